// Package mcpserver serves athena-edge's memory operations to agents over
// the Model Context Protocol, built on the official Go SDK
// (github.com/modelcontextprotocol/go-sdk/mcp). The command `athena-edge
// mcp` runs it on stdin/stdout; docs/MCP.md shows how to configure clients.
//
// # Tools and resources
//
// [New] returns an *mcp.Server with these tools, each with a JSON schema
// inferred from a typed input struct and a structured (JSON) result:
// remember, recall, get, forget, update_state, record_event, create_task,
// list_tasks, create_goal, list_goals, link_code, consolidate and
// sync_status. Two resources describe the current project:
// [URIProjectSummary] (name, path, counts by state and type, last access)
// and [URIRecentMemories] (the newest [RecentLimit] memories).
//
// The server does not read the environment. The caller opens the store and
// resolves the current project ([Config].DB and [Config].Project); the CLI
// does it with the same rules as its other commands.
//
// # Errors
//
// Bad arguments never crash the server and never become protocol errors:
// they come back as tool results with isError set and a text naming the
// argument, such as `recall: invalid argument "k": must be between 1 and
// 1000, got -1`. Arguments of the wrong JSON type, unknown arguments and
// values outside an enum are rejected by the SDK's schema validation, whose
// message names the property (`validating /properties/state: ...`).
// Validation errors from core ([core.FieldError]) are reported under the
// tool's argument name (core's "memory_type" is the tool's "type"). A panic
// in a handler becomes a tool error too.
//
// # Concurrency
//
// The server is safe for concurrent use: the SDK may run tool calls of one
// session concurrently, and every call is one or two short transactions on
// [core.DB]. Several server processes may share one SQLite file (WAL, a busy
// timeout of 5s per transaction). As a stopgap against SQLITE_BUSY reaching
// an agent, a tool call whose error text says the database is locked or
// busy is retried up to [Config].BusyRetries times with a short backoff; the
// check is on the text because the SQLite driver's error codes live in a
// package this one does not import.
package mcpserver
