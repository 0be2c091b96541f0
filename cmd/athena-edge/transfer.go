package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/athena-edge/athena-edge/core"
)

func exportCommand() *command {
	var format string
	return &command{
		name: "export", summary: "write every project, memory (with embeddings), event, task, goal and code entity as JSON lines to stdout",
		usage: "[--format jsonl]",
		flags: func(fs *flag.FlagSet) { fs.StringVar(&format, "format", "jsonl", "output format (jsonl)") },
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("export takes no arguments")
			}
			if format != "jsonl" {
				return usageErr("--format %q: only jsonl is supported", format)
			}
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			bw := bufio.NewWriterSize(e.stdout, 1<<16)
			enc := json.NewEncoder(bw)
			bar := newProgress(e.stderr, "export", 0)
			var n int64
			if err := h.DB.Export(e.ctx, func(r core.Record) error {
				n++
				bar.set(n)
				return enc.Encode(r)
			}); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			bar.done(n)
			return bw.Flush()
		},
	}
}

// importBatch is how many lines one import transaction covers.
const importBatch = 256

type importLine struct {
	no  int
	rec core.Record
}

type importReport struct {
	Imported int           `json:"imported"`
	Failed   int           `json:"failed"`
	Errors   []importError `json:"errors"`
}

type importError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

func importCommand() *command {
	return &command{
		name: "import", summary: "import an export (FILE or - for stdin); a bad line is reported with its number and the rest still imports",
		usage: "FILE",
		run: func(e *env, args []string) error {
			path, err := oneArg("import", args, "FILE")
			if err != nil {
				return err
			}
			in, size := e.stdin, int64(0)
			if path != "-" {
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil {
					size = st.Size()
				}
				in = f
			}
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			cr := &countingReader{r: in}
			sc := bufio.NewScanner(cr)
			sc.Buffer(make([]byte, 1<<20), 8<<20)
			bar := newProgress(e.stderr, "import", size)
			rep := importReport{Errors: []importError{}}
			fail := func(no int, err error) {
				rep.Failed++
				rep.Errors = append(rep.Errors, importError{Line: no, Error: err.Error()})
				if !e.json {
					fmt.Fprintf(e.stderr, "import: line %d: %v\n", no, err)
				}
			}
			var batch []importLine
			flush := func() error {
				ok, errs, err := importLines(e, h.DB, batch)
				if err != nil {
					return err
				}
				rep.Imported += ok
				for _, le := range errs {
					fail(le.no, le.err)
				}
				batch = batch[:0]
				bar.set(cr.n)
				return nil
			}
			no := 0
			for sc.Scan() {
				no++
				line := sc.Bytes()
				if len(line) == 0 {
					continue
				}
				var r core.Record
				if err := json.Unmarshal(line, &r); err != nil {
					fail(no, fmt.Errorf("not a record: %w", err))
					continue
				}
				batch = append(batch, importLine{no: no, rec: r})
				if len(batch) == importBatch {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if err := sc.Err(); err != nil {
				fail(no+1, fmt.Errorf("read: %w", err))
			}
			if err := flush(); err != nil {
				return err
			}
			bar.done(cr.n)
			if e.json {
				if err := printJSON(e.stdout, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(e.stdout, "imported %d records, %d failed\n", rep.Imported, rep.Failed)
			}
			if rep.Failed > 0 {
				return fmt.Errorf("import: %d of %d records failed", rep.Failed, rep.Failed+rep.Imported)
			}
			return nil
		},
	}
}

type lineErr struct {
	no  int
	err error
}

// importLines imports a batch in one transaction. Lines that fail
// validation are skipped inside it; if the transaction itself fails (a
// store that aborts a transaction on any error), each line is retried in
// its own transaction so one bad line cannot sink the rest.
func importLines(e *env, db *core.DB, lines []importLine) (int, []lineErr, error) {
	if len(lines) == 0 {
		return 0, nil, nil
	}
	var ok int
	var errs []lineErr
	err := db.Update(e.ctx, func(tx *core.Tx) error {
		ok, errs = 0, nil
		for _, l := range lines {
			if err := tx.Import(e.ctx, l.rec); err != nil {
				if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrConflict) && !errors.Is(err, core.ErrNotFound) {
					return err
				}
				errs = append(errs, lineErr{l.no, err})
				continue
			}
			ok++
		}
		return nil
	})
	if err == nil {
		return ok, errs, nil
	}
	if e.ctx.Err() != nil || len(lines) == 1 {
		if len(lines) == 1 {
			return 0, []lineErr{{lines[0].no, err}}, nil
		}
		return 0, nil, err
	}
	ok, errs = 0, nil
	for _, l := range lines {
		n, le, err := importLines(e, db, []importLine{l})
		if err != nil {
			return 0, nil, err
		}
		ok += n
		errs = append(errs, le...)
	}
	return ok, errs, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
