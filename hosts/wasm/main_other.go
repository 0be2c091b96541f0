//go:build !wasip1

package main

import (
	"fmt"
	"os"
)

// main explains how to build the module: on any other platform this
// package is only a build target, so that `go vet ./...` and `go build
// ./...` cover it.
func main() {
	fmt.Fprintln(os.Stderr, "hosts/wasm is a WebAssembly reactor; build it with:\n"+
		"  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o core.wasm ./hosts/wasm\n"+
		"or run scripts/build-wasm.sh")
	os.Exit(2)
}
