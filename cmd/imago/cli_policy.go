package main

import (
	"context"
	"flag"
)

// restoreCommand is `imago restore`.
var restoreCommand = &command{
	name: "restore", synopsis: "ID...",
	summary: "Brings documents back from the trash, whole (same id, bytes, metadata and expiry), and prints\neach one's metadata JSON, one line each.",
	details: `A document not in the trash is refused (exit 1); one purged, or unknown, is not found
(exit 3). Share links of a deleted document stay dead after its restore.`,
	flags: func(c *cli, fs *flag.FlagSet) { c.clientFlags(fs) },
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) == 0 {
			return usageError{"restore: no ID given"}
		}
		cl := c.client()
		return c.eachArg(args, func(id string) error {
			d, err := cl.Restore(ctx, id)
			if err != nil {
				return err
			}
			return printJSON(c.stdout, d)
		})
	},
}

// holdCommand is `imago hold`.
var holdCommand = &command{
	name: "hold", synopsis: "ID...",
	summary: "Puts a legal hold on documents: until it is released, a document refuses deletion, does not\nexpire, is not purged (in the trash too) and stays readable. Holding a held one succeeds.",
	flags:   func(c *cli, fs *flag.FlagSet) { c.clientFlags(fs) },
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) == 0 {
			return usageError{"hold: no ID given"}
		}
		cl := c.client()
		return c.eachArg(args, func(id string) error { return cl.Hold(ctx, id) })
	},
}

// releaseCommand is `imago release`.
var releaseCommand = &command{
	name: "release", synopsis: "ID...",
	summary: "Lifts the legal hold of documents: each one's policy resumes (an expiry already past expires\nit then). Releasing a document not held succeeds.",
	flags:   func(c *cli, fs *flag.FlagSet) { c.clientFlags(fs) },
	run: func(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
		if len(args) == 0 {
			return usageError{"release: no ID given"}
		}
		cl := c.client()
		return c.eachArg(args, func(id string) error { return cl.Release(ctx, id) })
	},
}
