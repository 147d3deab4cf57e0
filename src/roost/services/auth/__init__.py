"""The `auth.*` operations: one module per part of the signed-in user's account.

- `sessions`: sign-in, tokens and sessions, registration, password change, minted JWTs;
- `profile`: the user's own profile and preferences;
- `recovery`: email verification and password reset by mailed one-time tokens;
- `navigation`: the pages the caller may open (the pages themselves are `services/pages.py`).
"""
