package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
)

type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: "(devel)", GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	return v
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version",
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("version takes no arguments")
			}
			v := buildVersion()
			if e.json {
				return json.NewEncoder(e.stdout).Encode(v)
			}
			_, err := fmt.Fprintf(e.stdout, "athena-edge %s (%s %s/%s)\n", v.Version, v.GoVersion, v.OS, v.Arch)
			return err
		},
	}
}
