package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/client"
	"github.com/imagodocs/imago/internal/config"
)

// auditCommand is `imago audit`.
var auditCommand = &command{
	name: "audit", synopsis: "[--since T] [--until T] [--action A] [--limit N] [--json] [ID] | verify",
	summary: "Lists the caller's audit trail, newest first: who did what to which document, when, and with\nwhat answer. One line each: time, action, status, actor, document id, link id, bytes, cache\n(- when there is none), separated by tabs. \"imago audit verify\" checks the trail.",
	details: `T is an RFC 3339 time (2026-12-01T10:00:00Z) or a duration back from now (90m, 24h, 30d);
--since is inclusive, --until exclusive. ID lists the records of that document only; --action
those of one action (upload, ingest, stat, read, list, delete, restore, purge, expire, hold,
release, retention, link.create, link.revoke, link.read). --json prints each record's JSON,
one a line. A document with no records prints nothing.
"imago audit verify" fetches every record of the caller's tenant and checks its chains: each
record's hash is the hash of its contents, each chain's seq runs 1, 2, 3… and each record's
prev is the hash of the record before it. When all hold it prints "N records in M chains,
intact" and exits 0; else it names on stderr the first record that breaks (by chain id, then
seq) — changed, removed before it, or out of order — and exits 4. Chains cannot show the
removal of a chain's last records, nor of a whole chain: nothing left points back to them.`,
	flags: func(c *cli, fs *flag.FlagSet) {
		c.clientFlags(fs)
		fs.String("since", "", "records at or after `T` (RFC 3339, or a duration back from now: 24h, 30d)")
		fs.String("until", "", "records before `T` (RFC 3339, or a duration back from now)")
		fs.String("action", "", "records of action `A` only")
		fs.Int("limit", 0, "list at most `N` records (default: all)")
		fs.Bool("json", false, "one record JSON per line instead")
	},
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) == 1 && args[0] == "verify" {
			return c.auditVerify(ctx, fs)
		}
		if len(args) > 1 {
			return usageError{"audit: want at most one ID"}
		}
		now := time.Now()
		var q client.AuditQuery
		for name, at := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
			if isSet(fs, name) {
				t, err := auditTime(fs.Lookup(name).Value.String(), now)
				if err != nil {
					return usageError{fmt.Sprintf("audit: --%s: %v", name, err)}
				}
				*at = t
			}
		}
		if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
			return usageError{"audit: --since must come before --until"}
		}
		limit, err := strconv.Atoi(fs.Lookup("limit").Value.String())
		if err != nil || limit < 0 {
			return usageError{"audit: --limit wants a whole number"}
		}
		q.Limit, q.Action = limit, fs.Lookup("action").Value.String()
		if len(args) == 1 {
			q.Document = args[0]
		}
		asJSON := fs.Lookup("json").Value.String() == "true"
		for r, err := range c.client().AuditRecords(ctx, q) {
			if err != nil {
				return err
			}
			if asJSON {
				err = printJSON(c.stdout, r)
			} else {
				_, err = fmt.Fprintln(c.stdout, auditLine(r))
			}
			if err != nil {
				return err
			}
		}
		return nil
	},
}

// auditVerify runs "imago audit verify".
func (c *cli) auditVerify(ctx context.Context, fs *flag.FlagSet) error {
	// A filter would leave out records of the chains and break them.
	for _, name := range []string{"since", "until", "action", "limit", "json"} {
		if isSet(fs, name) {
			return usageError{"audit verify: checks every record, --" + name + " does not apply"}
		}
	}
	sum, err := c.client().VerifyAudit(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s in %s, intact\n", count(sum.Records, "record"), count(sum.Chains, "chain"))
	return err
}

// count is "1 thing" or "n things".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// auditTime reads T of --since and --until: an RFC 3339 time, or a
// duration back from now.
func auditTime(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := config.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration back from now (24h, 30d)", v)
	}
	return now.Add(-d), nil
}

// auditLine is one record as "imago audit" lists it.
func auditLine(r client.AuditRecord) string {
	bytes := "-"
	if r.Bytes != nil {
		bytes = strconv.FormatInt(*r.Bytes, 10)
	}
	orDash := func(s string) string { return cmp.Or(oneLine(s), "-") }
	return strings.Join([]string{orDash(r.Time), orDash(r.Action), strconv.Itoa(r.Status), orDash(r.Actor),
		orDash(r.DocumentID), orDash(r.LinkID), bytes, orDash(r.Cache)}, "\t")
}

// rfc3339 is t in RFC 3339, UTC; "-" when there is none.
func rfc3339(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// oneLine keeps a filename from breaking the one-line-per-document output.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}
