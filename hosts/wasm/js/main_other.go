//go:build !js

package main

import (
	"fmt"
	"os"
)

// main explains how to build the browser core: on any platform but js this
// package is only a build target, so that `go vet ./...` covers the code
// the browser build shares (edge.go, bench.go).
func main() {
	fmt.Fprintln(os.Stderr, "hosts/wasm/js is the browser build of athena-edge; build it with:\n"+
		"  GOOS=js GOARCH=wasm go build -o athena.wasm ./hosts/wasm/js\n"+
		"or run scripts/build-web.sh (athena-edge serve builds it on start)")
	os.Exit(2)
}
