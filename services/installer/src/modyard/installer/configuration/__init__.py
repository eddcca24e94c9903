"""An installation's configuration: defaults, validation, secrets, environment overrides.

The rules, in the order the installer applies them:

**Fields.** A module's ``ConfigSpec`` has a JSON Schema (``json_schema``) and UI fields
(``fields``). Both name the stored values: a property of the schema or a stored field (every type
but ``label``, ``info`` and ``button``) is a *setting*; a ``fieldsGroup`` (or an object property
with ``properties``) is a *group* whose values live under its name (``{"advanced": {"apiUrl":
…}}``); a ``multiple`` field (or an ``array`` property) holds a list, and a multiple group a list
of objects. Paths (:data:`Path`) name settings by their names only: lists are walked through, so
``("servers", "password")`` is the password of every element of ``servers``.

**Defaults.** The module's defaults are each field's ``default``, else its schema property's
``default``. A group's default is its own ``default`` laid over its members' defaults, so an
absent group appears with its members' defaults; each element of a multiple group gets the
members' defaults it lacks. Defaults are *not* written into the stored configuration
(:func:`validate_config` returns what was sent): they are read at :func:`effective_config` time,
so that an environment override can take the place of a default and a module's new defaults apply
to existing installations — as a Prisme.ai AppInstance falls back to its app's ``config.value``.

**Layers and merge rule.** The effective configuration is, per setting, the instance's value, else
the environment's (``APP_CONFIG_…``/``APP_SECRET_…``, see :func:`read_env_overrides`), else the
module's default. ``null`` counts as not set: it falls through to the next layer, and a setting
no layer sets is absent from the result (never ``null``). Groups merge
member by member, at any depth, so an instance that sets only ``advanced.apiUrl`` still gets
``advanced.timeout`` from the environment or the defaults. Everything else — scalars, lists (also
lists of groups) and free-form objects (``json`` fields, objects without declared
``properties``) — is taken whole from the highest layer that sets it.

**Validation** (:func:`config_errors`, :func:`validate_config`) checks the configuration as the
runtime will see it (instance over the given overrides over defaults) and reports *every* problem
at once, each as a JSON pointer into the configuration (``/apiKey``, ``/advanced/apiUrl``,
``/servers/0/host``) with a detail saying what to send. Never the value sent: a secret must not
come back in an error. It checks

- the schema, with the dialect its ``$schema`` names (Draft 2020-12 when it names none) and format
  checking, compiled by :func:`modyard.common.user_schemas.compile_user_schema`: nothing is
  fetched (a ``$ref`` outside the document makes the module unconfigurable until its publisher
  fixes it, reported at ``""`` with the schema's pointer), and ``pattern``/``patternProperties``
  match with RE2 in linear time (a pattern RE2 cannot compile is reported the same way);
- unknown keys: an object whose schema names ``additionalProperties``, ``patternProperties``,
  ``unevaluatedProperties`` or a composition (``allOf``, ``$ref`` …) is left to the schema; any
  other object that declares its members (schema ``properties`` or fields) is closed, stricter than
  plain JSON Schema on purpose: a mistyped key would otherwise be stored silently — and a
  mistyped ``apiKy`` unencrypted and unmasked, since only declared settings are known secrets;
- each field's ``visibility`` and ``required`` (booleans or conditions, see
  :mod:`modyard.common.expressions`) evaluated against that configuration. Inside a group,
  ``config.x`` finds ``x`` among the group's own values first (innermost group first), then at the
  root, so a member can name a sibling (``config.apiUrl``) or any setting by its full path
  (``config.advanced.apiUrl``). A hidden field (its ``visibility`` false, or inside a hidden
  group) is never required, not even by the schema's ``required``; a value sent for it is kept and
  still checked against the schema (the runtime reads it; the UI just does not show it). A
  required field is missing when it is absent, ``null``, ``""`` or ``[]``. A condition the module
  got wrong is reported at the field's pointer rather than guessed at;
- ``${NAME}`` placeholders: accepted wherever the field has ``allow_custom`` (Slingr's
  ``allowCustom``), whatever its schema says.

**Secrets** (:func:`secret_paths`) are the settings whose field is ``secret`` or of type
``password``, whose schema property is ``writeOnly`` (or Prisme.ai's ``secret: true``), or —
defence in depth for modules that forgot to say so — text settings whose name ends in a secret
noun: ``password``, ``passwd``, ``passphrase``, ``secret``, ``token``, ``credentials``, or
``key`` after ``api``/``private``/``secret``/``access``/``signing``/``encryption``/``client``
(``apiKey``, ``API_KEY``, ``webhookSecret``, ``accessToken``; not ``tokenUrl``, not a toggle). Below
a secret nothing is split further: the whole value is secret. :func:`mask` shows them as
``"********"``; :func:`split_secrets`/:func:`merge_secrets` keep them apart from the plain
configuration so they can be stored encrypted; :func:`restore_masked` puts stored secrets back
where a client sent the mask unchanged.

**Environment overrides**: see :func:`read_env_overrides`.
"""
