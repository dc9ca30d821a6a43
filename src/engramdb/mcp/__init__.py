"""EngramDB as an MCP server (official `mcp` SDK): remember, recall, get_context, forget,
update_memory, memory_history, facts, tips, report_outcome. See engramdb.mcp.server and docs/mcp.md."""
