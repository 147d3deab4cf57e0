"""Triggers: a source of events (cron, database, storage, queue, stream, pub/sub) and a target
that receives each event (a function, run as the trigger's owner, or a signed POST to a URL).

`catalog` declares the `triggers.*` operations; `model` reads the triggers of a tenant;
`events` turns what happened into events on the deployment's triggers queue (durable: SQL
tables embedded, Redis scaled out); `delivery` is the loop every server runs that takes them
from that queue and delivers them, recording each in `roost_trigger_deliveries`; `cron`
fires the ticks of schedules, each once across replicas; `consumers` follows queues,
stream rooms and pub/sub patterns for the triggers that name them.
"""
