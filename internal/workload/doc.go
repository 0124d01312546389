// Package workload holds the facts about pod owners that both the agent and the controller
// decide on, so that they decide alike: today whether a StatefulSet will (re)create a pod and
// therefore keeps its addresses (SPEC.md 3.7, 3.9, 3.10). It reads through a client.Reader and
// never writes.
package workload
