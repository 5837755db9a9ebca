package client

// Progress is told how one transfer (a Put or a Get of one document)
// advances, for a progress bar. Add may be called from several goroutines
// at once.
type Progress interface {
	// Start is called once before any byte moves: total is the document's
	// size, done how many of its bytes a resumed transfer already has.
	Start(total, done int64)
	// Add reports n more bytes moved. n is negative when an attempt failed
	// and its bytes will be moved again.
	Add(n int64)
	// Finish is called once the transfer is over, whether it succeeded or not.
	Finish()
}

type noProgress struct{}

func (noProgress) Start(int64, int64) {}
func (noProgress) Add(int64)          {}
func (noProgress) Finish()            {}

var _ Progress = noProgress{}

func orNoProgress(p Progress) Progress {
	if p == nil {
		return noProgress{}
	}
	return p
}
