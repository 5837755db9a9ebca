package docstore

import (
	"errors"
	"fmt"

	"github.com/imagodocs/imago/internal/api"
)

// Kind classifies an error by what the caller can do about it. The HTTP
// layer maps each kind to a status in exactly one place (apigw).
type Kind int

const (
	KindInternal         Kind = iota // anything unexpected; the detail goes to the log only
	KindInvalid                      // the request is malformed
	KindUnauthenticated              // no caller identity
	KindNotFound                     // unknown, or another tenant's, document
	KindConflict                     // the request conflicts with the current state
	KindTooLarge                     // a body or response over a configured limit
	KindUnsupportedMedia             // a media type the service cannot use
	KindBadRange                     // a Range that cannot be satisfied
	KindUnavailable                  // a backend is unavailable; retrying may succeed
	KindGone                         // a share link expired, used up or revoked
)

// kindNames are the API's error codes.
var kindNames = map[Kind]string{
	KindInternal:         api.CodeInternal,
	KindInvalid:          api.CodeInvalid,
	KindUnauthenticated:  api.CodeUnauthenticated,
	KindNotFound:         api.CodeNotFound,
	KindConflict:         api.CodeConflict,
	KindTooLarge:         api.CodeTooLarge,
	KindUnsupportedMedia: api.CodeUnsupportedMedia,
	KindBadRange:         api.CodeBadRange,
	KindUnavailable:      api.CodeUnavailable,
	KindGone:             api.CodeGone,
}

// String is the machine-readable error code a caller sees.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return api.CodeInternal
}

// Op names the operation that failed, as "package.Function"
// ("docstore.Download", "s3store.Get"): the first argument of every E.
type Op string

// Error is the error type of the domain and of every backend. Message is
// safe to show a caller; Err holds the detail that only the log may see.
type Error struct {
	Op      Op // the operation that failed
	Kind    Kind
	Message string
	Err     error
}

// E is the one way an *Error is built: E(op, args...), where each of args
// is taken by its type — a Kind sets the kind, an error is wrapped (its kind
// is inherited when no Kind is given), and a string is the message a caller
// may see (format it with fmt.Sprintf). Every argument is optional but the
// op:
//
//	E(op, KindNotFound, fmt.Sprintf("document %s not found", id))
//	E(op, fmt.Errorf("put blob %s: %w", id, err)) // the kind of err
//	E(op, KindUnavailable, "the cache is unavailable", err)
func E(op Op, args ...any) error {
	e := &Error{Op: op, Kind: -1}
	for _, a := range args {
		switch v := a.(type) {
		case string:
			e.Message = v
		case Kind:
			e.Kind = v
		case error:
			e.Err = v
		case nil:
		default:
			panic(fmt.Sprintf("docstore.E: argument of type %T", a))
		}
	}
	if e.Kind < 0 {
		e.Kind = KindOf(e.Err)
	}
	return e
}

func (e *Error) Error() string {
	msg := string(e.Op)
	add := func(s string) {
		if s == "" {
			return
		}
		if msg != "" {
			msg += ": "
		}
		msg += s
	}
	add(e.Message)
	if e.Err != nil {
		add(e.Err.Error())
	}
	if msg == "" {
		msg = e.Kind.String()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf reports the kind of the outermost *Error in err's chain that has
// one; KindInternal when there is none.
func KindOf(err error) Kind {
	var e *Error
	for err != nil {
		if !errors.As(err, &e) {
			return KindInternal
		}
		if e.Kind >= 0 {
			return e.Kind
		}
		err = e.Err
	}
	return KindInternal
}

// PublicMessage is the message a caller may see for err: the outermost
// message set on an *Error of err's kind, or a generic text for the kind.
// Internal errors never expose their text.
func PublicMessage(err error) string {
	kind := KindOf(err)
	if kind == KindInternal {
		return "internal error"
	}
	var e *Error
	for err != nil && errors.As(err, &e) {
		if e.Message != "" {
			return e.Message
		}
		err = e.Err
	}
	switch kind {
	case KindNotFound:
		return "not found"
	case KindUnavailable:
		return "a backend is unavailable; retry later"
	case KindUnauthenticated:
		return "no caller identity"
	}
	return kind.String()
}

// IsNotFound reports whether err is of KindNotFound.
func IsNotFound(err error) bool { return err != nil && KindOf(err) == KindNotFound }
