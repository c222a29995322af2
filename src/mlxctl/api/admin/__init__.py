"""mlxctl's own API, what the CLI and the MCP server talk to (OpenAI envelope).

status.py      /health, /api/admin/{ps,status,load,unload}
operations.py  /api/admin/models…, registry…, store… (every `mlxctl.operations` entry)
progress.py    a blocking operation's progress events, handed to the event loop
slots.py       /api/admin/slots…
"""
