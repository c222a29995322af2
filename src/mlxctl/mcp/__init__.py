"""The MCP server: mlxctl's admin actions as tools for agents (stdio)."""
