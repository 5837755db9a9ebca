//go:build race

package envelope

// raceEnabled: the race detector makes sync.Pool drop buffers at random.
const raceEnabled = true
