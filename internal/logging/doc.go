// Package logging wires the process-wide loggers of controller-runtime and client-go (klog) to a
// log/slog handler. They are package state of those libraries, so only a command's main sets them,
// once, before anything starts; library code such as agent.Run never does (tests run many
// components in one process).
package logging
