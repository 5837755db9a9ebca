package docstore

import (
	"encoding/json"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// The JSON of the domain types the API answers is the wire contract's
// (package api): Document, Page and CreatedUpload marshal and unmarshal
// through api.Document, api.Page and api.CreatedUpload, so that each JSON
// shape is defined once, where the client reads it too, while the domain
// keeps its typed ids and statuses. (Part and PresignedPart are api's
// types themselves.)
//
// Record embeds Document and so gets these methods too: a Record is never
// encoded as JSON (each store has its own encoding of it).

// API is d as the API answers it.
func (d Document) API() api.Document {
	return api.Document{ID: string(d.ID), Filename: d.Filename, ContentType: d.ContentType, Size: d.Size,
		SHA256: d.SHA256, Status: api.Status(d.Status), CreatedAt: d.CreatedAt, Metadata: d.Metadata, Failure: d.Failure,
		ExpiresAt: timeOrNil(d.Expires), LegalHold: d.LegalHold, DeletedAt: timeOrNil(d.DeletedAt), PurgeAt: timeOrNil(d.PurgeAt)}
}

// timeOrNil is t, or nil (an absent field) when t is zero.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// timeOf is *t, or zero when t is nil.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// DocumentFromAPI is the Document a's JSON describes.
func DocumentFromAPI(a api.Document) Document {
	return Document{ID: ID(a.ID), Descriptor: Descriptor{Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256},
		Status: Status(a.Status), CreatedAt: a.CreatedAt, Metadata: a.Metadata, Failure: a.Failure,
		Expires: timeOf(a.ExpiresAt), LegalHold: a.LegalHold, DeletedAt: timeOf(a.DeletedAt), PurgeAt: timeOf(a.PurgeAt)}
}

// MarshalJSON encodes d as an api.Document.
func (d Document) MarshalJSON() ([]byte, error) { return json.Marshal(d.API()) }

// UnmarshalJSON decodes an api.Document into d.
func (d *Document) UnmarshalJSON(b []byte) error {
	var a api.Document
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*d = DocumentFromAPI(a)
	return nil
}

// API is p as the API answers it.
func (p Page) API() api.Page {
	a := api.Page{NextCursor: p.NextCursor}
	if p.Documents != nil {
		a.Documents = make([]api.Document, len(p.Documents))
		for i, d := range p.Documents {
			a.Documents[i] = d.API()
		}
	}
	return a
}

// MarshalJSON encodes p as an api.Page.
func (p Page) MarshalJSON() ([]byte, error) { return json.Marshal(p.API()) }

// UnmarshalJSON decodes an api.Page into p.
func (p *Page) UnmarshalJSON(b []byte) error {
	var a api.Page
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*p = Page{NextCursor: a.NextCursor}
	if a.Documents != nil {
		p.Documents = make([]Document, len(a.Documents))
		for i, d := range a.Documents {
			p.Documents[i] = DocumentFromAPI(d)
		}
	}
	return nil
}

// API is u as the API answers it.
func (u CreatedUpload) API() api.CreatedUpload {
	return api.CreatedUpload{ID: string(u.ID), UploadURL: u.UploadURL, Method: u.Method, Headers: u.Headers,
		PartSize: u.PartSize, PartCount: u.PartCount, ExpiresAt: u.ExpiresAt}
}

// MarshalJSON encodes u as an api.CreatedUpload.
func (u CreatedUpload) MarshalJSON() ([]byte, error) { return json.Marshal(u.API()) }

// UnmarshalJSON decodes an api.CreatedUpload into u.
func (u *CreatedUpload) UnmarshalJSON(b []byte) error {
	var a api.CreatedUpload
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*u = CreatedUpload{ID: ID(a.ID), UploadURL: a.UploadURL, Method: a.Method, Headers: a.Headers,
		PartSize: a.PartSize, PartCount: a.PartCount, ExpiresAt: a.ExpiresAt}
	return nil
}

// API is l as the API answers it, with its URL.
func (l Link) API(url string) api.Link {
	a := api.Link{ID: string(l.ID), DocumentID: string(l.Document), URL: url, ExpiresAt: l.ExpiresAt,
		Uses: l.Uses, Disposition: l.Disposition, CreatedAt: l.CreatedAt}
	if l.MaxUses > 0 {
		maxUses := l.MaxUses
		a.MaxUses = &maxUses
	}
	return a
}
