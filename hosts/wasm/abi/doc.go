// Package abi is the operation set of athena-edge's WebAssembly core
// module (hosts/wasm): JSON requests in, JSON responses out, dispatched to
// core's pure API and, for search, to a core.DB over core/memstore.
//
// The wasm module and native code run the same [Dispatcher], so the
// differential test in tests/ can require byte-identical responses from
// both. See the hosts/wasm package documentation for the exports and the
// memory protocol around it.
//
// # Envelope
//
// A request is {"op": NAME, "args": {...}}; args may be omitted for an op
// without arguments. Unknown fields are rejected. A response is either
// {"result": {...}} or {"error": {"code", "field", "reason", "message"}}
// (see [Error] and the Code* constants; field and reason are set for
// validation errors).
//
// # Wire types
//
// JSON numbers cannot carry NaN or ±Inf, and JSON strings cannot carry
// invalid UTF-8. So vectors ([Vector]) may also be sent as base64 of
// little-endian float32s, texts ([Text]) as {"base64": "..."}, and float
// results ([Float]) come back as the strings "NaN", "+Inf" and "-Inf" when
// they are not finite. Durations are integer nanoseconds and times RFC 3339,
// as in core's own JSON.
//
// # Ops
//
//	ops                 → {abi_version, ops}
//	validate_memory     {memory, project, limits?, embedding?, content?} → {memory} normalized
//	validate_project    {project, limits?} → {project} with defaults
//	check_transition    {from, to} → {allowed, next}
//	quality             {usefulness, confidence, access_count} → {quality}
//	cosine              {a, b} → {cosine}
//	tokenize            {text} → {tokens, terms, term_freqs, normalized, content_hash}
//	bm25                {k1, b, query|query_terms, doc|doc_tf+doc_len, docs, total_len, df} → {score, terms, doc_len, avg_doc_len, idf}
//	embed               {text, dim} → {model, dim, vector} (core.HashEmbedder)
//	merge_memory        {current?, tombstoned, change} → {status, reason, delete, memory}
//	corpus.load         {project, now_ms, memories} → {corpus, project_id, memories}
//	corpus.drop         {corpus} → {dropped}
//	search              {corpus | inline, query, with_embeddings} → {hits}
//	plan_consolidation  {project, memories, events, now_ms, embeddings, can_embed, options} → {plan, report}
//
// Search runs core's planner, fusion and boosts exactly as on any store:
// the corpus is a core.DB over core/memstore whose clock is stopped at
// now_ms, so results do not depend on the wall clock.
//
// # Concurrency
//
// A [Dispatcher] is not safe for concurrent use. The helper functions and
// wire types are.
package abi
