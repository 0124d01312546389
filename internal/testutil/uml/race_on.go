//go:build race

package uml

// raceEnabled: this binary is built with -race. ThreadSanitizer maps shadow memory at fixed
// addresses far above what a user-mode-linux process can address, so such a binary cannot run
// in a guest.
const raceEnabled = true
