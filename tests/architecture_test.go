package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/athena-edge/athena-edge"

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Dir(filepath.Dir(file))
}

// goList runs `go list` in the repository and returns its output lines.
func goList(t *testing.T, env []string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go list %v: %s", args, out)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestCoreImportsOnlyStdlib enforces the architecture: every package under
// core/ except the test helper core/storetest depends on the standard
// library and on core's own packages only, on every platform core targets.
func TestCoreImportsOnlyStdlib(t *testing.T) {
	t.Parallel()
	platforms := [][]string{nil, {"GOOS=wasip1", "GOARCH=wasm"}, {"GOOS=js", "GOARCH=wasm"}}
	pkgs := goList(t, nil, "./core/...")
	require.NotEmpty(t, pkgs)
	for _, env := range platforms {
		for _, pkg := range pkgs {
			if pkg == module+"/core/storetest" {
				continue
			}
			deps := goList(t, env, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
			for _, d := range deps {
				assert.True(t, strings.HasPrefix(d, module+"/core"), "%s (%v) imports %s, outside the standard library", pkg, env, d)
			}
			direct := goList(t, env, "-f", `{{join .Imports "\n"}}`, pkg)
			for _, d := range direct {
				switch d {
				case "os", "net", "syscall/js", "unsafe", "os/exec", "net/http":
					assert.Fail(t, "forbidden import", "%s (%v) depends on %s; core must stay pure", pkg, env, d)
				}
			}
		}
	}
}

// TestCoreStoretestImports allows core/storetest testify and core only.
func TestCoreStoretestImports(t *testing.T) {
	t.Parallel()
	deps := goList(t, nil, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./core/storetest")
	for _, d := range deps {
		ok := strings.HasPrefix(d, module+"/core") || strings.HasPrefix(d, "github.com/stretchr/testify") ||
			strings.HasPrefix(d, "github.com/davecgh/go-spew") || strings.HasPrefix(d, "github.com/pmezard/go-difflib") ||
			strings.HasPrefix(d, "gopkg.in/yaml") || strings.HasPrefix(d, "go.yaml.in/yaml")
		assert.True(t, ok, "core/storetest imports %s", d)
	}
}

// TestAdaptersDoNotImportEachOther: sqlitevec, pgadapter and sync never
// import each other; cmd and hosts wire them.
func TestAdaptersDoNotImportEachOther(t *testing.T) {
	t.Parallel()
	adapters := []string{"sqlitevec", "pgadapter", "sync"}
	for _, a := range adapters {
		if _, err := os.Stat(filepath.Join(repoRoot(t), a)); err != nil {
			continue // not built yet
		}
		deps := goList(t, nil, "-deps", "-test", "-f", "{{.ImportPath}}", "./"+a+"/...")
		for _, d := range deps {
			for _, b := range adapters {
				if b != a && (d == module+"/"+b || strings.HasPrefix(d, module+"/"+b+"/")) {
					assert.Fail(t, "adapter imports adapter", "%s depends on %s", a, d)
				}
			}
		}
	}
}
