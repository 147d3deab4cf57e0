"""The admin dashboard's page: plain JavaScript modules and CSS in `static/`, served by
`roost serve` at `/_/` (`roost.server.dashboard`). No build step and no Node.js: the files
here are what the browser runs."""
