package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/imagodocs/imago/internal/client"
	"github.com/imagodocs/imago/internal/config"
)

// shareCommand is `imago share`.
var shareCommand = &command{
	name: "share", synopsis: "[--expires DURATION] [--max-uses N] [--attachment] [--json] ID",
	summary: "Creates a share link to a document and prints its URL: anyone who has the URL downloads the\ndocument with it, without a token, until the link expires, is used up or is revoked.",
	details: `DURATION is Go's form (90m, 2h, 1h30m) or whole days (7d), a whole number of seconds; the
server takes from 1m up to its longest (IMAGO_LINK_MAX_TTL, a week by default). Without
--expires the link lasts an hour, or the server's longest if that is shorter. Each answer of
the link is one use; a document over the server's inline limit is fetched through it in Range
parts, each one use. "imago links ID" lists a document's live links, "imago unshare ID
LINK_ID" revokes one.`,
	flags: func(c *cli, fs *flag.FlagSet) {
		c.clientFlags(fs)
		fs.String("expires", "", "the link lasts `DURATION` (default: an hour)")
		fs.Int64("max-uses", 0, "the link answers at most `N` times (default: no limit but its expiry)")
		fs.Bool("attachment", false, "browsers save the document rather than show it (Content-Disposition: attachment)")
		fs.Bool("json", false, "print the link's JSON instead of its URL")
	},
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) != 1 {
			return usageError{"share: want exactly one ID"}
		}
		var opt client.ShareOptions
		if isSet(fs, "expires") {
			d, err := config.ParseDuration(fs.Lookup("expires").Value.String())
			if err != nil || d < time.Second || d%time.Second != 0 {
				return usageError{"share: --expires wants a duration of whole seconds, 1s or more (90m, 2h, 7d)"}
			}
			opt.ExpiresIn = d
		}
		if isSet(fs, "max-uses") {
			n, err := strconv.ParseInt(fs.Lookup("max-uses").Value.String(), 10, 64)
			if err != nil || n < 1 {
				return usageError{"share: --max-uses wants a number from 1 up"}
			}
			opt.MaxUses = n
		}
		if fs.Lookup("attachment").Value.String() == "true" {
			opt.Disposition = client.DispositionAttachment
		}
		l, err := c.client().Share(ctx, args[0], opt)
		if err != nil {
			return err
		}
		if fs.Lookup("json").Value.String() == "true" {
			return printJSON(c.stdout, l)
		}
		_, err = fmt.Fprintln(c.stdout, l.URL)
		return err
	},
}

// linksCommand is `imago links`.
var linksCommand = &command{
	name: "links", synopsis: "[--json] ID",
	summary: "Lists a document's live share links (not expired, used up or revoked), newest first, one line\neach: link id, uses/max uses (∞: no limit), expires (RFC 3339), disposition, URL, separated\nby tabs.",
	flags: func(c *cli, fs *flag.FlagSet) {
		c.clientFlags(fs)
		fs.Bool("json", false, "one link JSON per line instead")
	},
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) != 1 {
			return usageError{"links: want exactly one ID"}
		}
		links, err := c.client().Links(ctx, args[0])
		if err != nil {
			return err
		}
		asJSON := fs.Lookup("json").Value.String() == "true"
		for _, l := range links {
			if asJSON {
				err = printJSON(c.stdout, l)
			} else {
				maxUses := "∞"
				if l.MaxUses != nil {
					maxUses = strconv.FormatInt(*l.MaxUses, 10)
				}
				_, err = fmt.Fprintf(c.stdout, "%s\t%d/%s\t%s\t%s\t%s\n", l.ID, l.Uses, maxUses,
					l.ExpiresAt.UTC().Format(time.RFC3339), l.Disposition, l.URL)
			}
			if err != nil {
				return err
			}
		}
		return nil
	},
}

// unshareCommand is `imago unshare`.
var unshareCommand = &command{
	name: "unshare", synopsis: "ID LINK_ID",
	summary: "Revokes a share link of a document: from then on the link answers 410 Gone. Revoking a link\nthat already expired, was used up or revoked succeeds; an unknown one is not found (exit 3).",
	flags:   func(c *cli, fs *flag.FlagSet) { c.clientFlags(fs) },
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) != 2 {
			return usageError{"unshare: want a document ID and a LINK_ID"}
		}
		return c.client().Unshare(ctx, args[0], args[1])
	},
}
