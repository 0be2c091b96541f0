// Package storetest is the conformance suite every athena-edge store must
// pass unchanged, in the spirit of testing/fstest and nettest.TestConn:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) core.Backend { return openFreshStore(t) })
//	}
//
// The suite drives a [core.DB] over the store, so it checks the store's
// half of the contract (persistence, filters, legs, the change log,
// transactions) through the operations users call. It contains the seed's
// 21 integration scenarios, made strict, plus an exhaustive state
// transition table, a bad-input table covering every validator rule,
// change-log idempotence and convergence, context cancellation and a
// concurrent hammer. A store bug becomes a new case here, not a test in one
// adapter.
//
// storetest is a test helper: it may import testify, and it is the only
// package under core that does.
package storetest
