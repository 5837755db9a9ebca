package client

import (
	"context"
	"fmt"
	"net/http"
)

// A document's policy (docs/design.md, "Retention, deletion delay, legal
// hold"): deletion into the trash or at once, restore, the legal hold.
// A document's retention is set when it is uploaded (PutOptions.ExpiresIn).
//
// Every call here is retried as the package comment says, including after
// an attempt whose answer was lost: each asks for a state (deleted,
// restored, held, released), and asking twice leaves the same state. What
// differs is the answer to a repeat of a deletion or a restore that went
// through: the document is no longer there (404), or no longer in the
// trash (409). Such an answer after an attempt that may have been carried
// out (mayHaveActed) is taken for that attempt's success — for a restore
// once the document reads again — rather than reported as a failure of a
// change that was made.

// Delete deletes a document (and aborts its upload if it is pending). On
// a server with a deletion delay the document goes to the trash, from
// where Restore brings it back until it is purged; without one it is
// purged at once. A document under a legal hold is refused (409).
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.delete(ctx, "delete", docPath(id), id)
}

// Purge deletes a document for good at once, from the trash or not. A
// document under a legal hold is refused (409).
func (c *Client) Purge(ctx context.Context, id string) error {
	return c.delete(ctx, "purge", docPath(id)+"?purge=true", id)
}

func (c *Client) delete(ctx context.Context, what, path, id string) error {
	_, acted, err := c.callActed(ctx, request{method: "DELETE", url: path}, nil)
	if err != nil && !(acted && IsNotFound(err)) {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	return nil
}

// Restore brings a document back from the trash, whole, and returns its
// metadata. A document not in the trash is a conflict (409); one purged,
// or never there, is not found.
func (c *Client) Restore(ctx context.Context, id string) (Document, error) {
	var d Document
	_, acted, err := c.callActed(ctx, request{method: "POST", url: docPath(id) + "/restore"}, &d)
	if acted && isStatus(err, http.StatusConflict) {
		// Not in the trash: the attempt whose answer was lost restored it,
		// if the document reads (a document in the trash does not).
		if restored, serr := c.Stat(ctx, id); serr == nil {
			return restored, nil
		}
	}
	if err != nil {
		return Document{}, fmt.Errorf("restore %s: %w", id, err)
	}
	return d, nil
}

// Hold puts a legal hold on a document: until Release, it is neither
// deleted, expired nor purged. Holding a held document succeeds.
func (c *Client) Hold(ctx context.Context, id string) error {
	if _, err := c.call(ctx, request{method: "PUT", url: docPath(id) + "/legal-hold"}, nil); err != nil {
		return fmt.Errorf("hold %s: %w", id, err)
	}
	return nil
}

// Release lifts a document's legal hold: its policy resumes (an expiry
// already past expires it then). Releasing a document not held succeeds.
func (c *Client) Release(ctx context.Context, id string) error {
	if _, err := c.call(ctx, request{method: "DELETE", url: docPath(id) + "/legal-hold"}, nil); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	return nil
}
