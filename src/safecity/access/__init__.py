"""Who may use safecity: users, roles, camera grants, console sessions, API tokens.

``roles`` says what each role may do; ``users`` keeps the accounts (argon2id
password hashes) and their camera grants; ``sessions`` signs people in (with
failed logins rate-limited and audited) and resolves cookies and API tokens to a
:class:`~safecity.access.roles.Principal`.
"""
