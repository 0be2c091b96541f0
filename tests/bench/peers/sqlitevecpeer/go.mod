module github.com/athena-edge/athena-edge/tests/bench/peers/sqlitevecpeer

go 1.26

require (
	github.com/asg017/sqlite-vec-go-bindings v0.1.6
	github.com/ncruces/go-sqlite3 v0.21.3
	github.com/tetratelabs/wazero v1.12.0
)

require (
	github.com/ncruces/julianday v1.0.0 // indirect
	golang.org/x/sys v0.44.0 // indirect
)
