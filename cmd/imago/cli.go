package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/imagodocs/imago/internal/client"
	"github.com/imagodocs/imago/internal/config"
)

// Exit statuses of the imago command (docs/design.md, "The `imago` command").
const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitNotFound  = 3
	exitIntegrity = 4
)

// version is set at build time (-ldflags "-X main.version=…"); without it
// the module's build information says.
var version = ""

// usageError is a command line the command cannot run: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errHelp is -h: the help was printed, exit status 0.
var errHelp = errors.New("help shown")

// exitStatus maps a command's error to its exit status.
func exitStatus(err error) int {
	var usage usageError
	var integrity *client.IntegrityError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &integrity), client.IsAuditBreak(err):
		return exitIntegrity
	case client.IsNotFound(err), errors.Is(err, os.ErrNotExist):
		return exitNotFound
	}
	return exitFailure
}

// cli is one run of the command: its surroundings, and the flags every
// client command shares.
type cli struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer

	url, token string
	parallel   int
	quiet      bool
}

// command is one of imago's commands.
type command struct {
	name     string
	synopsis string // the usage line's arguments
	summary  string // one line for the command list
	details  string // more help, after the flags
	flags    func(c *cli, fs *flag.FlagSet)
	run      func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error
}

func (cmd *command) usage() string { return "usage: imago " + cmd.name + " " + cmd.synopsis }

// help prints the command's help: usage, flags, details.
func (cmd *command) help(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\n%s\n", cmd.usage(), cmd.summary)
	var flags strings.Builder
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nflags:\n%s", flags.String())
	}
	if cmd.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.details))
	}
}

// clientFlags are the flags of every command that talks to an API.
func (c *cli) clientFlags(fs *flag.FlagSet) {
	defURL := c.getenv("IMAGO_URL")
	if defURL == "" {
		addr := cmp.Or(c.getenv("IMAGO_ADDR"), config.DefaultAddr)
		defURL = "http://" + addr
	}
	fs.StringVar(&c.url, "url", defURL, "the Imago API (default: IMAGO_URL, else http://$IMAGO_ADDR)")
	fs.StringVar(&c.token, "token", c.getenv("IMAGO_TOKEN"), "bearer token (default: IMAGO_TOKEN)")
}

func (c *cli) transferFlags(fs *flag.FlagSet) {
	c.clientFlags(fs)
	fs.IntVar(&c.parallel, "parallel", 4, "how many parts move at once")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress bar or summary")
}

func (c *cli) client() *client.Client {
	return client.New(client.Options{BaseURL: c.url, Token: c.token, Parallel: c.parallel, StateDir: c.stateDir()})
}

// stateDir is where interrupted uploads are remembered: the user's cache
// folder (XDG_CACHE_HOME first, read through getenv so tests can point
// it elsewhere).
func (c *cli) stateDir() string {
	if dir := c.getenv("XDG_CACHE_HOME"); dir != "" {
		return filepath.Join(dir, "imago", "uploads")
	}
	return client.DefaultStateDir()
}

// interactive says whether put and get may tell how they are doing on
// stderr (a progress bar, a summary): only when it is a terminal and
// --quiet was not given. Errors go there regardless.
func (c *cli) interactive() bool {
	f, ok := c.stderr.(*os.File)
	return !c.quiet && ok && term.IsTerminal(int(f.Fd()))
}

// progress is a progress bar for one transfer on stderr, or nil when
// there must be none.
func (c *cli) progress(name string) client.Progress {
	if !c.interactive() {
		return nil
	}
	return &bar{w: c.stderr, name: name}
}

// checkURL refuses an API URL that is not http(s)://host[/path]: such a
// URL is a mistake on the command line, which no retry would cure.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", raw)
	}
	return nil
}

// fileName is the name a document is saved under in a folder: the last
// element of its filename, which its uploader chose (so never a path out
// of the folder), or its id when that leaves no name.
func fileName(d client.Document) string {
	name := d.Filename[strings.LastIndexAny(d.Filename, `/\`)+1:]
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, 0) {
		return d.ID
	}
	return name
}

// checkDestination refuses, before anything is downloaded, a file get
// could not write or must not replace.
func checkDestination(path string, force bool) error {
	dir := filepath.Dir(path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cannot write %s: the folder %s does not exist", path, dir)
	case err != nil:
		return fmt.Errorf("cannot write %s: %v", path, err)
	case !fi.IsDir():
		return fmt.Errorf("cannot write %s: %s is not a folder", path, dir)
	}
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		return nil
	case fi.IsDir():
		return fmt.Errorf("cannot write %s: it is a folder", path)
	case !force:
		return fmt.Errorf("%s already exists (--force replaces it)", path)
	}
	return nil
}

// bar draws one transfer's progress: bytes, rate and time left.
type bar struct {
	w    io.Writer
	name string
	b    *progressbar.ProgressBar
}

var _ client.Progress = (*bar)(nil)

func (p *bar) Start(total, done int64) {
	desc := p.name
	if done > 0 {
		desc += fmt.Sprintf(" (resumed, %s already there)", humanBytes(done))
	}
	p.Finish() // a Put that fell back from inline to an upload starts again
	p.b = nil
	if total-done <= 0 {
		return
	}
	// The bar counts this run's bytes only, so that the rate and the time
	// left are this run's.
	p.b = progressbar.NewOptions64(total-done,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
	)
}

func (p *bar) Add(n int64) {
	if p.b != nil {
		p.b.Add64(n)
	}
}

func (p *bar) Finish() {
	if p.b != nil && !p.b.IsFinished() {
		p.b.Exit()
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// parse parses flags and positional arguments in any order (Go's flag
// package alone stops at the first positional one); "--" ends the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// metaFlags collects repeated -meta k=v flags.
type metaFlags map[string]string

func (m metaFlags) String() string { return "" }

func (m metaFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	m[k] = val
	return nil
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// eachArg runs fn for every argument, going on after a failure, and
// returns the first error (so the exit status is the first failure's).
func (c *cli) eachArg(args []string, fn func(string) error) error {
	var first error
	for _, a := range args {
		if err := fn(a); err != nil {
			fmt.Fprintln(c.stderr, "imago:", err)
			if first == nil {
				first = reported{err}
			}
		}
	}
	return first
}

// reported is an error already printed.
type reported struct{ error }

func (r reported) Unwrap() error { return r.error }

var commands = []*command{
	putCommand,
	getCommand,
	lsCommand,
	statCommand,
	rmCommand,
	restoreCommand,
	holdCommand,
	releaseCommand,
	shareCommand,
	linksCommand,
	unshareCommand,
	auditCommand,
	versionCommand,
}

// putCommand is `imago put`.
var putCommand = &command{
	name: "put", synopsis: "[-meta k=v]... [--expires-in DURATION] [--parallel N] [--quiet] FILE...",
	summary: "Uploads each file — inline, by presigned PUT or in parallel parts, as its size requires —\nand prints each document's metadata JSON, one line each, once it is available.",
	details: `Running put again on a file whose upload in parts was interrupted resumes it: only the
parts the server lacks are sent, as long as the file's size and modification time are
unchanged; a part the server lists with an ETag other than the MD5 of the file's bytes is
sent again. The state of interrupted uploads is kept under the user's cache folder
(imago/uploads). A document stored with a SHA-256 other than the file's is an integrity
failure: put names it and exits 4.
--expires-in sets each document's retention: it expires DURATION after its upload began
(its metadata's expires_at), and is then gone for good. DURATION is Go's form (90m, 2h,
1h30m) or whole days (30d), a whole number of seconds. Without it the server's retention
applies (IMAGO_RETENTION; unset: never). A resumed upload keeps the retention, metadata and
type of the run that began it.`,
	flags: func(c *cli, fs *flag.FlagSet) {
		c.transferFlags(fs)
		fs.Var(metaFlags{}, "meta", "custom metadata `key=value` (repeatable)")
		fs.String("type", "", "content type (default: from the file name's extension)")
		fs.String("expires-in", "", "each document expires `DURATION` after its upload (default: the server's retention)")
	},
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) == 0 {
			return usageError{"put: no FILE given"}
		}
		var expiresIn time.Duration
		if isSet(fs, "expires-in") {
			d, err := config.ParseDuration(fs.Lookup("expires-in").Value.String())
			if err != nil || d < time.Second || d%time.Second != 0 {
				return usageError{"put: --expires-in wants a duration of whole seconds, 1s or more (90m, 2h, 30d)"}
			}
			expiresIn = d
		}
		meta := fs.Lookup("meta").Value.(metaFlags)
		contentType := fs.Lookup("type").Value.String()
		cl := c.client()
		return c.eachArg(args, func(path string) error {
			d, err := cl.Put(ctx, path, client.PutOptions{ContentType: contentType, Metadata: meta,
				ExpiresIn: expiresIn, Progress: c.progress(filepath.Base(path))})
			if err != nil {
				return err
			}
			return printJSON(c.stdout, d)
		})
	},
}

// getCommand is `imago get`.
var getCommand = &command{
	name: "get", synopsis: "[-o FILE|DIR] [--force] [--parallel N] [--quiet] ID",
	summary: "Downloads a document, whole or in parallel Range parts, into FILE.part, checks its SHA-256,\nthen renames it to FILE. A FILE.part left by an interrupted get is resumed.",
	details: `FILE defaults to the document's filename in the current folder; -o DIR writes that name
into the folder DIR; -o - writes to stdout. An existing FILE is left alone (get fails before
downloading anything) unless --force is given. A SHA-256 mismatch removes FILE.part and
exits 4.`,
	flags: func(c *cli, fs *flag.FlagSet) {
		c.transferFlags(fs)
		fs.String("o", "", "write to `FILE`, or into the folder DIR (default: the document's filename; - for stdout)")
		fs.Bool("force", false, "replace FILE if it exists")
	},
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) != 1 {
			return usageError{"get: want exactly one ID"}
		}
		id, out := args[0], fs.Lookup("o").Value.String()
		force := fs.Lookup("force").Value.String() == "true"
		cl := c.client()
		if out == "-" {
			_, err := cl.Download(ctx, id, c.stdout, client.GetOptions{Progress: c.progress(id)})
			return err
		}
		// Where the document goes is settled before any byte of it moves.
		if fi, err := os.Stat(out); out == "" || err == nil && fi.IsDir() {
			d, err := cl.Stat(ctx, id)
			if err != nil {
				return err
			}
			out = filepath.Join(out, fileName(d))
		}
		if err := checkDestination(out, force); err != nil {
			return err
		}
		d, err := cl.Get(ctx, id, out, client.GetOptions{Progress: c.progress(filepath.Base(out))})
		if errors.Is(err, os.ErrNotExist) && !client.IsNotFound(err) {
			// A local file or folder that went away: a failure, not a
			// document not found.
			return errors.New(err.Error())
		}
		if err != nil {
			return err
		}
		if c.interactive() {
			fmt.Fprintf(c.stderr, "%s: %d bytes, sha256 %s\n", out, d.Size, d.SHA256)
		}
		return nil
	},
}

// lsCommand is `imago ls`.
var lsCommand = &command{
	name: "ls", synopsis: "[--trash] [--limit N] [--json]",
	summary: "Lists the caller's documents, newest first, pending and failed ones too, one line each:\nid, size (bytes), status, created (RFC 3339), filename, separated by tabs.",
	details: `--trash lists the documents deleted but not yet purged instead (on a server with a deletion
delay; "imago restore ID" brings one back), one line each: id, size, status, created,
deleted, purge (when it is purged for good), filename, separated by tabs; times in RFC 3339.
With --json each line is the metadata JSON, with deleted_at and purge_at.`,
	flags: func(c *cli, fs *flag.FlagSet) {
		c.clientFlags(fs)
		fs.Int("limit", 0, "list at most `N` documents (default: all)")
		fs.Bool("json", false, "one metadata JSON per line instead")
		fs.Bool("trash", false, "list the trash instead")
	},
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) != 0 {
			return usageError{"ls: takes no arguments"}
		}
		limit, err := strconv.Atoi(fs.Lookup("limit").Value.String())
		if err != nil || limit < 0 {
			return usageError{"ls: --limit wants a whole number"}
		}
		asJSON := fs.Lookup("json").Value.String() == "true"
		trash := fs.Lookup("trash").Value.String() == "true"
		cl := c.client()
		list := cl.List
		if trash {
			list = cl.ListTrash
		}
		for d, err := range list(ctx, limit) {
			if err != nil {
				return err
			}
			switch {
			case asJSON:
				err = printJSON(c.stdout, d)
			case trash:
				_, err = fmt.Fprintf(c.stdout, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Size, d.Status,
					d.CreatedAt.UTC().Format(time.RFC3339), rfc3339(d.DeletedAt), rfc3339(d.PurgeAt), oneLine(d.Filename))
			default:
				_, err = fmt.Fprintf(c.stdout, "%s\t%d\t%s\t%s\t%s\n", d.ID, d.Size, d.Status,
					d.CreatedAt.UTC().Format(time.RFC3339), oneLine(d.Filename))
			}
			if err != nil {
				return err
			}
		}
		return nil
	},
}

// statCommand is `imago stat`.
var statCommand = &command{
	name: "stat", synopsis: "ID",
	summary: "Prints a document's metadata JSON.",
	flags:   func(c *cli, fs *flag.FlagSet) { c.clientFlags(fs) },
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) != 1 {
			return usageError{"stat: want exactly one ID"}
		}
		d, err := c.client().Stat(ctx, args[0])
		if err != nil {
			return err
		}
		return printJSON(c.stdout, d)
	},
}

// rmCommand is `imago rm`.
var rmCommand = &command{
	name: "rm", synopsis: "[--purge] ID...",
	summary: "Deletes documents (a pending upload is aborted).",
	details: `On a server with a deletion delay (IMAGO_DELETION_DELAY) a deleted document goes to the
trash: no longer read or listed, but "imago ls --trash" lists it and "imago restore ID"
brings it back, until it is purged for good at the end of the delay. --purge purges at
once, from the trash or not. A document under a legal hold is refused (exit 1) until
"imago release ID"; an unknown one, or one already in the trash without --purge, is not
found (exit 3).`,
	flags: func(c *cli, fs *flag.FlagSet) {
		c.clientFlags(fs)
		fs.Bool("purge", false, "purge for good at once, past the trash")
	},
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) == 0 {
			return usageError{"rm: no ID given"}
		}
		cl := c.client()
		remove := cl.Delete
		if fs.Lookup("purge").Value.String() == "true" {
			remove = cl.Purge
		}
		return c.eachArg(args, func(id string) error { return remove(ctx, id) })
	},
}

// versionCommand is `imago version`.
var versionCommand = &command{
	name: "version", synopsis: "",
	summary: "Prints the version.",
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) != 0 {
			return usageError{"version: takes no arguments"}
		}
		fmt.Fprintln(c.stdout, "imago", versionString())
		return nil
	},
}

func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return strings.TrimSpace(v)
}
