//go:build js

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall/js"
)

// main installs globalThis.athena and keeps the Go runtime alive: every
// call from the page runs in its own goroutine and answers with a Promise.
func main() {
	var e *edge
	need := func() (*edge, error) {
		if e == nil {
			return nil, errors.New("athena.open has not completed")
		}
		return e, nil
	}
	api := map[string]any{
		"version": abiVersion,
		"open": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeObject {
				return rejected(errors.New("athena.open(config) takes one object"))
			}
			c := args[0]
			cfg := edgeConfig{Device: str(c, "device"), SyncURL: str(c, "syncURL"), TicketURL: str(c, "ticketURL")}
			if s := c.Get("snapshot"); s.Truthy() {
				cfg.Snapshot = make([]byte, s.Get("byteLength").Int())
				js.CopyBytesToGo(cfg.Snapshot, s)
			}
			persist, changed := c.Get("persist"), c.Get("changed")
			if persist.Type() != js.TypeFunction {
				return rejected(errors.New("athena.open: config.persist must be a function"))
			}
			cfg.Persist = func(ctx context.Context, b []byte) error {
				arr := js.Global().Get("Uint8Array").New(len(b))
				js.CopyBytesToJS(arr, b)
				_, err := await(ctx, persist.Invoke(arr))
				return err
			}
			if changed.Type() == js.TypeFunction {
				cfg.Changed = func() { changed.Invoke() }
			}
			return promise(func(ctx context.Context) (any, error) {
				if e != nil {
					return nil, errors.New("athena.open: already open")
				}
				ed, err := openEdge(ctx, cfg)
				if err != nil {
					return nil, err
				}
				e = ed
				return map[string]any{"device": ed.cfg.Device, "project": ed.project.Name, "project_id": ed.project.ID}, nil
			})
		}),
		"remember": call(need, func(ctx context.Context, e *edge, r rememberReq) (any, error) { return e.remember(ctx, r) }),
		"recall":   call(need, func(ctx context.Context, e *edge, r recallReq) (any, error) { return e.recall(ctx, r) }),
		"list": call(need, func(ctx context.Context, e *edge, r struct {
			Limit int `json:"limit"`
		}) (any, error) {
			return e.list(ctx, r.Limit)
		}),
		"status": call(need, func(ctx context.Context, e *edge, _ struct{}) (any, error) { return e.status(ctx) }),
		"setOnline": call(need, func(ctx context.Context, e *edge, r struct {
			Online bool `json:"online"`
		}) (any, error) {
			e.setOnline(r.Online)
			return true, nil
		}),
		"syncNow": call(need, func(ctx context.Context, e *edge, _ struct{}) (any, error) {
			e.syncNow()
			return true, nil
		}),
		"flush": call(need, func(ctx context.Context, e *edge, _ struct{}) (any, error) { return true, e.flush(ctx) }),
		"bench": js.FuncOf(func(_ js.Value, args []js.Value) any {
			var r benchReq
			if err := arg(args, &r); err != nil {
				return rejected(err)
			}
			return promise(func(ctx context.Context) (any, error) { return bench(ctx, r) })
		}),
	}
	js.Global().Set("athena", js.ValueOf(api))
	if f := js.Global().Get("onAthenaReady"); f.Type() == js.TypeFunction {
		f.Invoke()
	}
	select {}
}

// abiVersion changes when the page-facing API does.
const abiVersion = 1

func str(v js.Value, key string) string {
	if f := v.Get(key); f.Type() == js.TypeString {
		return f.String()
	}
	return ""
}

// arg decodes the optional JSON string argument of a call.
func arg(args []js.Value, v any) error {
	if len(args) == 0 || args[0].IsUndefined() || args[0].IsNull() {
		return nil
	}
	if args[0].Type() != js.TypeString {
		return errors.New("argument must be a JSON string")
	}
	if err := json.Unmarshal([]byte(args[0].String()), v); err != nil {
		return fmt.Errorf("bad argument: %w", err)
	}
	return nil
}

// call wraps an edge operation as a JS function: (JSON string) →
// Promise<JSON string>.
func call[R any](need func() (*edge, error), fn func(context.Context, *edge, R) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, args []js.Value) any {
		var r R
		if err := arg(args, &r); err != nil {
			return rejected(err)
		}
		return promise(func(ctx context.Context) (any, error) {
			e, err := need()
			if err != nil {
				return nil, err
			}
			return fn(ctx, e, r)
		})
	})
}

// promise runs fn in a goroutine (it may block on the network or on
// IndexedDB, which a js.Func must never do) and settles a Promise with its
// JSON result or its error.
func promise(fn func(context.Context) (any, error)) js.Value {
	var exec js.Func
	exec = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			v, err := fn(context.Background())
			if err == nil {
				var b []byte
				if b, err = json.Marshal(v); err == nil {
					resolve.Invoke(string(b))
					return
				}
			}
			reject.Invoke(js.Global().Get("Error").New(err.Error()))
		}()
		return nil
	})
	defer exec.Release() // the executor runs synchronously inside new Promise
	return js.Global().Get("Promise").New(exec)
}

func rejected(err error) js.Value {
	return js.Global().Get("Promise").Call("reject", js.Global().Get("Error").New(err.Error()))
}

// await waits for a JS promise from a goroutine.
func await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	then := js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- result{v: first(a)}
		return nil
	})
	catch := js.FuncOf(func(_ js.Value, a []js.Value) any {
		msg := "rejected"
		if v := first(a); v.Truthy() {
			msg = v.Call("toString").String()
		}
		ch <- result{err: errors.New(msg)}
		return nil
	})
	defer then.Release()
	defer catch.Release()
	js.Global().Get("Promise").Call("resolve", p).Call("then", then, catch)
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	}
}

func first(a []js.Value) js.Value {
	if len(a) == 0 {
		return js.Undefined()
	}
	return a[0]
}
