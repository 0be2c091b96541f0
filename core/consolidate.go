package core

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Consolidation defaults. A zero field of [ConsolidationOptions] takes the
// matching default.
const (
	// DefaultNearDuplicateThreshold is the cosine similarity at or above
	// which two memories of the same type are near duplicates.
	DefaultNearDuplicateThreshold = 0.95
	// DefaultEventGap is the longest pause inside one episode: a longer gap
	// between two events of a session starts a new episode.
	DefaultEventGap = 60 * time.Minute
	// DefaultEventSimilarity is the cosine similarity at or above which two
	// embedded events of one episode are related when they share no file.
	DefaultEventSimilarity = 0.5
	// DefaultArchiveAge is how long a memory must have gone without being
	// created or accessed before it may be archived.
	DefaultArchiveAge = 30 * 24 * time.Hour
	// DefaultArchiveUsefulness: memories below it may be archived.
	DefaultArchiveUsefulness = 0.1
	// DefaultArchiveMaxAccess: memories accessed fewer times may be archived.
	DefaultArchiveMaxAccess = 2
	// DefaultConsolidationBatch is how many writes [Consolidate] commits per
	// transaction.
	DefaultConsolidationBatch = 256
)

// Fixed parameters of the near-duplicate search. They are part of the
// determinism contract: every device must use the same ones.
const (
	lshBands      = 32     // bands of the sign sketch
	lshBandBits   = 16     // bits per band
	lshMaxRun     = 64     // in a larger bucket, compare each memory with its next lshMaxRun only
	lshSeed1      = 0x6174 // PCG seed of the random sign flips ("at")
	lshSeed2      = 0x68656e61
	lshSketchBits = lshBands * lshBandBits
	lshWords      = lshSketchBits / 64
	rescoreEps    = 1e-9
	maxSentence   = 400 // bytes of an event's first sentence kept in an episode summary
)

// ConsolidationOptions tunes consolidation. The zero value uses the
// Default* constants, the project's consolidation interval and the
// validator's default limits. It is a value type, safe for concurrent use.
type ConsolidationOptions struct {
	// NearDuplicateThreshold is the minimum cosine similarity of near
	// duplicates (DefaultNearDuplicateThreshold if 0).
	NearDuplicateThreshold float64
	// EventGap splits an episode where two consecutive events of a session
	// are further apart (DefaultEventGap if 0). An episode whose last event
	// is less than EventGap old is still open and waits for a later run.
	EventGap time.Duration
	// EventSimilarity relates two embedded events that share no file
	// (DefaultEventSimilarity if 0).
	EventSimilarity float64
	// Window is the reconsolidation window (DefaultWindow if 0).
	Window time.Duration
	// Interval overrides the project's consolidation interval, which
	// governs promotion and how often usefulness is rescored.
	Interval time.Duration
	// ArchiveAge, ArchiveUsefulness and ArchiveMaxAccess decide archiving
	// (DefaultArchiveAge, DefaultArchiveUsefulness, DefaultArchiveMaxAccess
	// if 0).
	ArchiveAge        time.Duration
	ArchiveUsefulness float64
	ArchiveMaxAccess  int64
	// Limits caps tags and content of the memories consolidation writes.
	// [Consolidate] uses the DB's limits when this is the zero value.
	Limits Limits
	// DryRun makes [Consolidate] plan and report without writing.
	DryRun bool
	// BatchSize is how many writes [Consolidate] commits per transaction
	// (DefaultConsolidationBatch if 0).
	BatchSize int
	// PageSize is how many memories [Consolidate] reads per transaction
	// (1000 if 0).
	PageSize int
}

func (o ConsolidationOptions) withDefaults(p *Project) ConsolidationOptions {
	if o.NearDuplicateThreshold <= 0 {
		o.NearDuplicateThreshold = DefaultNearDuplicateThreshold
	}
	if o.EventGap <= 0 {
		o.EventGap = DefaultEventGap
	}
	if o.EventSimilarity <= 0 {
		o.EventSimilarity = DefaultEventSimilarity
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Interval <= 0 && p != nil {
		o.Interval = p.ConsolidationInterval
	}
	if o.Interval <= 0 {
		o.Interval = DefaultConsolidationInterval
	}
	if o.ArchiveAge <= 0 {
		o.ArchiveAge = DefaultArchiveAge
	}
	if o.ArchiveUsefulness <= 0 {
		o.ArchiveUsefulness = DefaultArchiveUsefulness
	}
	if o.ArchiveMaxAccess <= 0 {
		o.ArchiveMaxAccess = DefaultArchiveMaxAccess
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultConsolidationBatch
	}
	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	o.Limits = o.Limits.withDefaults()
	return o
}

// ConsolidationInput is everything [PlanConsolidation] looks at. The order
// of Memories and Events does not matter.
type ConsolidationInput struct {
	// Project is the project being consolidated; memories and events of
	// other projects are ignored.
	Project Project
	// Memories are the project's memories in every state.
	Memories []Memory
	// Events are the project's unconsolidated episodic events (consolidated
	// ones are ignored).
	Events []Event
	// Now is the time the rules are evaluated at.
	Now time.Time
	// Embeddings holds vectors for new episode memories, by the memory's
	// ID, for clusters whose events do not all carry a vector of the
	// project's model. [Consolidate] fills it from the DB's embedder.
	Embeddings map[ID][]float32
	// CanEmbed says that the caller can embed the content of new episode
	// memories that have no vector yet (they are then planned with
	// NeedsEmbedding set). When false such clusters are skipped.
	CanEmbed bool
}

// ConsolidationRule names the rule behind a [ConsolidationAction].
type ConsolidationRule string

// Consolidation rules, in the order their actions are applied.
const (
	RuleCluster ConsolidationRule = "cluster" // episodic events → one semantic memory
	RuleMerge   ConsolidationRule = "merge"   // exact and near duplicates → the oldest survives
	RuleReturn  ConsolidationRule = "return"  // labile memory whose window closed → consolidated
	RulePromote ConsolidationRule = "promote" // unconsolidated older than the interval → consolidated
	RuleRescore ConsolidationRule = "rescore" // usefulness decays or grows with access
	RuleArchive ConsolidationRule = "archive" // useless, unused and old → archived
)

func (r ConsolidationRule) phase() int {
	switch r {
	case RuleCluster:
		return 0
	case RuleMerge:
		return 1
	case RuleReturn:
		return 2
	case RulePromote:
		return 3
	case RuleRescore:
		return 4
	}
	return 5
}

// OpKind names a write of a [ConsolidationOp].
type OpKind string

// Consolidation writes.
const (
	OpCreate OpKind = "create" // remember Memory
	OpUpdate OpKind = "update" // set tags and/or usefulness
	OpState  OpKind = "state"  // one state-machine transition
	OpEvent  OpKind = "event"  // mark an event consolidated into MemoryID
)

// ConsolidationOp is one write of a plan. Each op records what the plan
// expected to find (From, BaseTags, FromUsefulness), so that [Consolidate]
// can skip an action whose memory changed between planning and applying.
type ConsolidationOp struct {
	Op       OpKind `json:"op"`
	MemoryID ID     `json:"memory_id"`
	// OpCreate: the memory to remember. NeedsEmbedding is set when its
	// Embedding must still come from an embedder.
	Memory         *Memory `json:"memory,omitempty"`
	NeedsEmbedding bool    `json:"needs_embedding,omitempty"`
	// OpUpdate: the new tags (nil: unchanged) and usefulness (nil:
	// unchanged), with the values the plan saw.
	BaseTags       []string `json:"base_tags,omitempty"`
	Tags           []string `json:"tags,omitempty"`
	FromUsefulness *float64 `json:"from_usefulness,omitempty"`
	Usefulness     *float64 `json:"usefulness,omitempty"`
	// OpState: the transition.
	From         State `json:"from,omitempty"`
	To           State `json:"to,omitempty"`
	SupersededBy ID    `json:"superseded_by,omitempty"`
	// OpEvent: the event to mark.
	EventID ID `json:"event_id,omitempty"`
}

// ConsolidationAction is one outcome of one rule: the memories (and events)
// involved, why, and the writes that carry it out, in order. MemoryIDs[0]
// is the memory the action is about: the new memory of a cluster, the
// survivor of a merge, the memory promoted, rescored, archived or returned.
type ConsolidationAction struct {
	Rule      ConsolidationRule `json:"rule"`
	MemoryIDs []ID              `json:"memory_ids"`
	EventIDs  []ID              `json:"event_ids,omitempty"`
	Reason    string            `json:"reason"`
	Ops       []ConsolidationOp `json:"ops"`

	// RuleMerge: the superseded memories and the survivor's tags and
	// effective access count afterwards. RuleRescore: the effective access
	// count used. RuleCluster: the session.
	Merged      []MergedMemory `json:"merged,omitempty"`
	Tags        []string       `json:"tags,omitempty"`
	AccessCount int64          `json:"access_count,omitempty"`
	SessionID   string         `json:"session_id,omitempty"`
}

// MergedMemory is a memory a merge superseded.
type MergedMemory struct {
	ID ID `json:"id"`
	// Match is "exact" (same normalized content) or "near" (cosine at or
	// above the threshold, possibly through other near duplicates).
	Match string `json:"match"`
	// Similarity is the cosine similarity with the survivor.
	Similarity float64 `json:"similarity"`
	// AccessCount is the memory's effective access count, now counted for
	// the survivor.
	AccessCount int64 `json:"access_count"`
}

// ConsolidationSkip is something consolidation left alone, and why.
type ConsolidationSkip struct {
	ID     ID     `json:"id"`
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// ConsolidationPlan is what [PlanConsolidation] decided: actions in the
// order they must be applied (by rule, then by first memory ID).
type ConsolidationPlan struct {
	ProjectID ID                    `json:"project_id"`
	Now       time.Time             `json:"now"`
	Actions   []ConsolidationAction `json:"actions"`
	Skipped   []ConsolidationSkip   `json:"skipped"`
	// EventsPending counts unconsolidated events in episodes that are still
	// open (their last event is less than EventGap old).
	EventsPending int `json:"events_pending"`
	// MemoriesScanned and EventsScanned count the project's input.
	MemoriesScanned int `json:"memories_scanned"`
	EventsScanned   int `json:"events_scanned"`
}

// MergeReport is one merge: the survivor and what it absorbed.
type MergeReport struct {
	Survivor   ID             `json:"survivor"`
	Superseded []MergedMemory `json:"superseded"`
	Tags       []string       `json:"tags"`
	// AccessCount is the survivor's effective access count: its own plus
	// that of every memory superseded into it.
	AccessCount int64 `json:"access_count"`
}

// ClusterReport is one episode turned into a semantic memory.
type ClusterReport struct {
	MemoryID  ID     `json:"memory_id"`
	SessionID string `json:"session_id"`
	EventIDs  []ID   `json:"event_ids"`
	// Existing is true when the memory already existed (a repeated or
	// concurrent consolidation) and only the events were linked.
	Existing bool `json:"existing,omitempty"`
}

// RescoreReport is one usefulness change.
type RescoreReport struct {
	ID          ID      `json:"id"`
	From        float64 `json:"from"`
	To          float64 `json:"to"`
	AccessCount int64   `json:"access_count"`
}

// ConsolidationReport says what a consolidation did (or, with DryRun,
// would do). Every list is non-nil so that its JSON is stable.
type ConsolidationReport struct {
	ProjectID          ID                  `json:"project_id"`
	DryRun             bool                `json:"dry_run"`
	At                 time.Time           `json:"at"`
	MemoriesScanned    int                 `json:"memories_scanned"`
	EventsScanned      int                 `json:"events_scanned"`
	EventsPending      int                 `json:"events_pending"`
	Merged             []MergeReport       `json:"merged"`
	Clustered          []ClusterReport     `json:"clustered"`
	Promoted           []ID                `json:"promoted"`
	Rescored           []RescoreReport     `json:"rescored"`
	Archived           []ID                `json:"archived"`
	ReturnedFromLabile []ID                `json:"returned_from_labile"`
	Skipped            []ConsolidationSkip `json:"skipped"`
	// Writes is how many writes (changes) were made, or would be.
	Writes int `json:"writes"`
}

// Empty reports whether the consolidation changed (or would change)
// nothing.
func (r *ConsolidationReport) Empty() bool {
	return r.Writes == 0 && len(r.Merged)+len(r.Clustered)+len(r.Promoted)+len(r.Rescored)+
		len(r.Archived)+len(r.ReturnedFromLabile) == 0
}

// Report summarizes the plan as a report of what applying it does.
func (p *ConsolidationPlan) Report() ConsolidationReport {
	r := newReport(p)
	for i := range p.Actions {
		r.add(&p.Actions[i], len(p.Actions[i].Ops), false)
	}
	r.Skipped = append(r.Skipped, p.Skipped...)
	return r
}

func newReport(p *ConsolidationPlan) ConsolidationReport {
	return ConsolidationReport{ProjectID: p.ProjectID, At: p.Now, MemoriesScanned: p.MemoriesScanned,
		EventsScanned: p.EventsScanned, EventsPending: p.EventsPending,
		Merged: []MergeReport{}, Clustered: []ClusterReport{}, Promoted: []ID{}, Rescored: []RescoreReport{},
		Archived: []ID{}, ReturnedFromLabile: []ID{}, Skipped: []ConsolidationSkip{}}
}

func (r *ConsolidationReport) add(a *ConsolidationAction, writes int, existing bool) {
	r.Writes += writes
	id := a.MemoryIDs[0]
	switch a.Rule {
	case RuleCluster:
		r.Clustered = append(r.Clustered, ClusterReport{MemoryID: id, SessionID: a.SessionID, EventIDs: slices.Clone(a.EventIDs), Existing: existing})
	case RuleMerge:
		r.Merged = append(r.Merged, MergeReport{Survivor: id, Superseded: slices.Clone(a.Merged), Tags: slices.Clone(a.Tags), AccessCount: a.AccessCount})
	case RuleReturn:
		r.ReturnedFromLabile = append(r.ReturnedFromLabile, id)
	case RulePromote:
		r.Promoted = append(r.Promoted, id)
	case RuleRescore:
		for _, op := range a.Ops {
			if op.Op == OpUpdate && op.Usefulness != nil {
				r.Rescored = append(r.Rescored, RescoreReport{ID: id, From: *op.FromUsefulness, To: *op.Usefulness, AccessCount: a.AccessCount})
			}
		}
	case RuleArchive:
		r.Archived = append(r.Archived, id)
	}
}

// RescoreUsefulness is the seed's usefulness rule: min(1, 0.8·old +
// 0.2·min(access,10)/10), plus 0.1 (still capped at 1) when access > 5.
// It is pure and safe for concurrent use.
func RescoreUsefulness(old float64, access int64) float64 {
	u := float64(0.8*old) + float64(0.2*float64(min(access, 10)))/10 // no fused multiply-adds: same bits everywhere
	if access > 5 {
		u += 0.1
	}
	return max(0, min(1, u))
}

// EffectiveAccessCounts returns, for every memory of ms that is not
// superseded, its access count plus the access counts of every memory of
// ms whose superseded_by chain ends at it. This is how consolidation sums
// the access counts of merged memories without moving any counter: each
// superseded memory keeps its own per-device counters (so replicas still
// converge when it is accessed concurrently), and its count is credited to
// whichever memory it finally points at. Chains that leave ms or loop are
// credited to nobody. It is pure and safe for concurrent use.
func EffectiveAccessCounts(ms []Memory) map[ID]int64 {
	byID := make(map[ID]*Memory, len(ms))
	for i := range ms {
		byID[ms[i].ID] = &ms[i]
	}
	out := make(map[ID]int64, len(ms))
	for i := range ms {
		if ms[i].State != StateSuperseded {
			out[ms[i].ID] += ms[i].AccessCount
		}
	}
	for i := range ms {
		m := &ms[i]
		if m.State != StateSuperseded {
			continue
		}
		if root, ok := chainRoot(byID, m); ok {
			out[root] += m.AccessCount
		}
	}
	return out
}

// chainRoot follows superseded_by from m to the first memory that is not
// superseded.
func chainRoot(byID map[ID]*Memory, m *Memory) (ID, bool) {
	for steps := 0; steps <= len(byID); steps++ {
		if m.State != StateSuperseded {
			return m.ID, true
		}
		next, ok := byID[m.SupersededBy]
		if !ok {
			return "", false
		}
		m = next
	}
	return "", false
}

// node is one memory in the planner's working set.
type node struct {
	m       *Memory
	isNew   bool // an episode memory created by this plan
	live    bool // not superseded, not archived
	hash    string
	typeIdx int
	// decided by the rules
	supersededBy ID
	access       int64 // effective access count
	state        State // state after return/promote (before archive)
}

func olderNode(a, b *node) int {
	return cmp.Or(a.m.CreatedAt.Compare(b.m.CreatedAt), cmp.Compare(a.m.ID, b.m.ID))
}

// PlanConsolidation applies the consolidation rules to in and returns the
// writes that carry them out. It is deterministic: the same input set, in
// any order, gives an identical plan, IDs of new memories included, on
// every platform. It is pure and safe for concurrent use; it does not
// modify in.
//
// Rules, for memories of in.Project:
//
//   - Return: a labile (or reconsolidating) memory whose reconsolidation
//     window has closed becomes consolidated.
//   - Cluster: unconsolidated events are grouped into episodes by session,
//     split where two consecutive events are more than EventGap apart and
//     where they are unrelated (events with files are related when they
//     share one; embedded events when their cosine reaches
//     EventSimilarity; without such evidence, neighbours are related).
//     Each closed episode becomes one consolidated semantic memory with an
//     extractive summary, the events' learned fields, their mean
//     confidence, their event types as tags, and the ID DeriveID(first
//     event time, "episode", sorted event IDs...). The events are marked
//     consolidated into it.
//   - Merge: live memories of the same type whose normalized content hashes
//     are equal, or whose embeddings have cosine ≥ NearDuplicateThreshold
//     and whose numbers and identifiers are the same, are grouped
//     transitively. The oldest (CreatedAt, then ID) survives with the
//     union of the tags; the others become superseded by it.
//   - Promote: unconsolidated memories at least Interval old become
//     consolidating, then consolidated.
//   - Rescore: live memories not updated for Interval get
//     [RescoreUsefulness] of their effective access count (see
//     [EffectiveAccessCounts]), written when it moves by more than 1e-9.
//   - Archive: unconsolidated or consolidated memories with usefulness
//     below ArchiveUsefulness, effective access below ArchiveMaxAccess,
//     created and last accessed at least ArchiveAge ago, and not the target
//     of any superseded memory, become archived.
//
// Every transition is checked with [CheckTransition].
func PlanConsolidation(in ConsolidationInput, opts ConsolidationOptions) ConsolidationPlan {
	proj := in.Project
	o := opts.withDefaults(&proj)
	now := truncMS(in.Now)
	plan := ConsolidationPlan{ProjectID: proj.ID, Now: now, Actions: []ConsolidationAction{}, Skipped: []ConsolidationSkip{}}

	// Canonical order: memories by ID, events by (time, ID).
	ms := sortedMemories(in.Memories, proj.ID)
	plan.MemoriesScanned = len(ms)
	evs := make([]*Event, 0, len(in.Events))
	for i := range in.Events {
		if e := &in.Events[i]; e.ProjectID == proj.ID && !e.Consolidated {
			evs = append(evs, e)
		}
	}
	slices.SortFunc(evs, func(a, b *Event) int { return cmp.Or(a.Timestamp.Compare(b.Timestamp), cmp.Compare(a.ID, b.ID)) })
	evs = slices.CompactFunc(evs, func(a, b *Event) bool { return a.ID == b.ID })
	plan.EventsScanned = len(evs)

	byID := make(map[ID]*Memory, len(ms))
	for i := range ms {
		byID[ms[i].ID] = &ms[i]
	}

	// Episodes first: their memories take part in the merge.
	var clusterActions []ConsolidationAction
	newMems := []*Memory{}
	for _, c := range clusterEvents(evs, now, o, &proj) {
		if c.pending {
			plan.EventsPending += len(c.events)
			continue
		}
		a, m, skip := planCluster(c, &proj, o, byID, in.Embeddings, in.CanEmbed)
		if skip != nil {
			plan.Skipped = append(plan.Skipped, *skip)
			continue
		}
		clusterActions = append(clusterActions, a)
		if m != nil {
			newMems = append(newMems, m)
		}
	}

	nodes := make([]*node, 0, len(ms)+len(newMems))
	for i := range ms {
		m := &ms[i]
		nodes = append(nodes, &node{m: m, live: m.State != StateSuperseded && m.State != StateArchived, state: m.State})
	}
	for _, m := range newMems {
		nodes = append(nodes, &node{m: m, isNew: true, live: true, state: StateConsolidated})
	}
	slices.SortFunc(nodes, func(a, b *node) int { return cmp.Compare(a.m.ID, b.m.ID) })
	nodeByID := make(map[ID]*node, len(nodes))
	for _, n := range nodes {
		nodeByID[n.m.ID] = n
	}

	// Effective access counts, before and after this plan's merges.
	all := make([]Memory, 0, len(nodes))
	for _, n := range nodes {
		all = append(all, Memory{ID: n.m.ID, State: n.m.State, SupersededBy: n.m.SupersededBy, AccessCount: n.m.AccessCount})
	}
	eff := EffectiveAccessCounts(all)
	for _, n := range nodes {
		n.access = eff[n.m.ID]
	}

	// targets: memories some superseded memory points at.
	targets := map[ID]bool{}
	for _, n := range nodes {
		if n.m.State == StateSuperseded && n.m.SupersededBy != "" {
			targets[n.m.SupersededBy] = true
		}
	}

	merges := planMerges(nodes, o, &proj)
	var actions []ConsolidationAction
	for _, g := range merges {
		a := mergeAction(g, o)
		for _, mm := range g[1:] {
			targets[g[0].m.ID] = true
			mm.supersededBy = g[0].m.ID
		}
		actions = append(actions, a)
	}
	// Cluster memories that a merge supersedes are born and then superseded.
	for i := range clusterActions {
		ca := &clusterActions[i]
		if n := nodeByID[ca.MemoryIDs[0]]; n != nil && n.isNew && n.supersededBy != "" {
			ops := []ConsolidationOp{ca.Ops[0], {Op: OpState, MemoryID: n.m.ID, From: StateUnconsolidated, To: StateSuperseded, SupersededBy: n.supersededBy}}
			for _, op := range ca.Ops {
				if op.Op == OpEvent {
					ops = append(ops, op)
				}
			}
			ca.Ops = ops
		}
	}
	actions = append(actions, clusterActions...)

	interval := o.Interval
	for _, n := range nodes {
		if !n.live || n.isNew || n.supersededBy != "" {
			continue
		}
		m := n.m
		st := m.State
		// Return from labile.
		if st == StateLabile && !InWindow(m, now, o.Window) || st == StateReconsolidating && windowClosed(m, now, o.Window) {
			actions = append(actions, ConsolidationAction{Rule: RuleReturn, MemoryIDs: []ID{m.ID},
				Reason: "reconsolidation window of " + o.Window.String() + " closed",
				Ops:    []ConsolidationOp{stateOp(m.ID, st, StateConsolidated)}})
			st = StateConsolidated
		}
		// Rescore.
		u := m.Usefulness
		if !m.UpdatedAt.After(now.Add(-interval)) {
			nu := RescoreUsefulness(u, n.access)
			if math.Abs(nu-u) > rescoreEps && !(nu == 0 && m.Confidence == 0) {
				from, to := u, nu
				actions = append(actions, ConsolidationAction{Rule: RuleRescore, MemoryIDs: []ID{m.ID},
					Reason:      "not updated for " + interval.String() + "; usefulness from " + strconv.FormatInt(n.access, 10) + " accesses",
					AccessCount: n.access,
					Ops:         []ConsolidationOp{{Op: OpUpdate, MemoryID: m.ID, FromUsefulness: &from, Usefulness: &to}}})
				u = nu
			}
		}
		old := func(t time.Time, d time.Duration) bool { return !t.After(now.Add(-d)) }
		archive := u < o.ArchiveUsefulness && n.access < o.ArchiveMaxAccess && old(m.CreatedAt, o.ArchiveAge) &&
			old(m.LastAccessed, o.ArchiveAge) && !targets[m.ID] &&
			(st == StateUnconsolidated || st == StateConsolidated || st == StateConsolidating)
		// Promote.
		var promote []ConsolidationOp
		switch {
		case st == StateUnconsolidated && !archive && old(m.CreatedAt, interval):
			promote = []ConsolidationOp{stateOp(m.ID, st, StateConsolidating), stateOp(m.ID, StateConsolidating, StateConsolidated)}
		case st == StateConsolidating && old(m.CreatedAt, interval):
			promote = []ConsolidationOp{stateOp(m.ID, st, StateConsolidated)}
		}
		if promote != nil {
			actions = append(actions, ConsolidationAction{Rule: RulePromote, MemoryIDs: []ID{m.ID},
				Reason: "unconsolidated for at least " + interval.String(), Ops: promote})
			st = StateConsolidated
		}
		if archive {
			actions = append(actions, ConsolidationAction{Rule: RuleArchive, MemoryIDs: []ID{m.ID},
				Reason: fmt.Sprintf("usefulness %.3f < %g, %d accesses < %d, idle for %s", u, o.ArchiveUsefulness, n.access, o.ArchiveMaxAccess, o.ArchiveAge),
				Ops:    []ConsolidationOp{stateOp(m.ID, st, StateArchived)}})
		}
	}

	slices.SortStableFunc(actions, func(a, b ConsolidationAction) int {
		return cmp.Or(cmp.Compare(a.Rule.phase(), b.Rule.phase()), cmp.Compare(a.MemoryIDs[0], b.MemoryIDs[0]))
	})
	plan.Actions = append(plan.Actions, actions...)
	checkPlan(&plan, nodeByID)
	return plan
}

// sortedMemories copies the memories of project, sorted by ID without
// duplicate IDs. [Consolidate] reads them in ID order already; other input
// is sorted by reference, not by moving the large Memory values around.
func sortedMemories(in []Memory, project ID) []Memory {
	ptrs := make([]*Memory, 0, len(in))
	for i := range in {
		if in[i].ProjectID == project {
			ptrs = append(ptrs, &in[i])
		}
	}
	byID := func(a, b *Memory) int { return cmp.Compare(a.ID, b.ID) }
	if !slices.IsSortedFunc(ptrs, byID) {
		slices.SortFunc(ptrs, byID)
	}
	ptrs = slices.CompactFunc(ptrs, func(a, b *Memory) bool { return a.ID == b.ID })
	ms := make([]Memory, len(ptrs))
	for i, m := range ptrs {
		ms[i] = *m
	}
	return ms
}

// checkPlan verifies that every transition of the plan is legal in
// sequence; an action that is not (a bug) is dropped and reported.
func checkPlan(plan *ConsolidationPlan, nodes map[ID]*node) {
	state := map[ID]State{}
	for id, n := range nodes {
		if !n.isNew {
			state[id] = n.m.State
		}
	}
	out := plan.Actions[:0]
next:
	for _, a := range plan.Actions {
		tmp := map[ID]State{}
		get := func(id ID) (State, bool) {
			if s, ok := tmp[id]; ok {
				return s, true
			}
			s, ok := state[id]
			return s, ok
		}
		for _, op := range a.Ops {
			switch op.Op {
			case OpCreate:
				tmp[op.MemoryID] = StateUnconsolidated
			case OpState:
				cur, ok := get(op.MemoryID)
				err := CheckTransition(cur, op.To)
				if !ok || cur != op.From || err != nil {
					plan.Skipped = append(plan.Skipped, ConsolidationSkip{ID: op.MemoryID, Rule: string(a.Rule),
						Reason: fmt.Sprintf("illegal transition %s → %s", cur, op.To)})
					continue next
				}
				tmp[op.MemoryID] = op.To
			}
		}
		for id, s := range tmp {
			state[id] = s
		}
		out = append(out, a)
	}
	plan.Actions = out
}

func stateOp(id ID, from, to State) ConsolidationOp {
	return ConsolidationOp{Op: OpState, MemoryID: id, From: from, To: to}
}

func windowClosed(m *Memory, now time.Time, window time.Duration) bool {
	return m.LastRetrieved.IsZero() || m.LastRetrieved.Before(now.Add(-window))
}

// ---- merge ----

// planMerges returns the merge groups, each with the survivor first and the
// others by age, ordered by survivor ID.
func planMerges(nodes []*node, o ConsolidationOptions, p *Project) [][]*node {
	live := make([]*node, 0, len(nodes))
	types := map[MemoryType]int{}
	for _, t := range MemoryTypes() {
		types[t] = len(types)
	}
	for _, n := range nodes {
		if !n.live {
			continue
		}
		n.hash = NormalizeContentHash(n.m.Content)
		if ti, ok := types[n.m.MemoryType]; ok {
			n.typeIdx = ti
		} else {
			n.typeIdx = len(types)
		}
		live = append(live, n)
	}
	uf := newUnionFind(len(live))
	// Exact duplicates.
	type key struct {
		t    MemoryType
		hash string
	}
	first := map[key]int{}
	reps := make([]int, 0, len(live))
	for i, n := range live {
		k := key{n.m.MemoryType, n.hash}
		if j, ok := first[k]; ok {
			uf.union(i, j)
			continue
		}
		first[k] = i
		reps = append(reps, i)
	}
	// Near duplicates among the representatives.
	nearPairs(live, reps, uf, o.NearDuplicateThreshold, p)

	groups := map[int][]*node{}
	for i, n := range live {
		r := uf.find(i)
		groups[r] = append(groups[r], n)
	}
	out := make([][]*node, 0)
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		slices.SortFunc(g, olderNode)
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b []*node) int { return cmp.Compare(a[0].m.ID, b[0].m.ID) })
	return out
}

func mergeAction(g []*node, o ConsolidationOptions) ConsolidationAction {
	s := g[0]
	a := ConsolidationAction{Rule: RuleMerge, MemoryIDs: []ID{s.m.ID}}
	var extra []string
	sum := s.access
	exact, near := 0, 0
	for _, n := range g[1:] {
		a.MemoryIDs = append(a.MemoryIDs, n.m.ID)
		match := "near"
		if n.hash == s.hash {
			match = "exact"
			exact++
		} else {
			near++
		}
		a.Merged = append(a.Merged, MergedMemory{ID: n.m.ID, Match: match, Similarity: Cosine(s.m.Embedding, n.m.Embedding), AccessCount: n.access})
		sum += n.access
		extra = append(extra, normTags(n.m.Tags)...)
	}
	tags := normTags(s.m.Tags)
	slices.Sort(extra)
	for _, t := range slices.Compact(extra) {
		if len(tags) >= o.Limits.MaxTags {
			break
		}
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	a.Tags, a.AccessCount = tags, sum
	s.access = sum // the survivor's effective count from now on
	a.Reason = fmt.Sprintf("%d exact and %d near duplicates of the oldest memory", exact, near)
	if s.isNew {
		s.m.Tags = tags
	} else if !slices.Equal(tags, s.m.Tags) {
		a.Ops = append(a.Ops, ConsolidationOp{Op: OpUpdate, MemoryID: s.m.ID, BaseTags: slices.Clone(s.m.Tags), Tags: tags})
	}
	for _, n := range g[1:] {
		from := n.m.State
		if n.isNew {
			continue // its supersession is part of its cluster action
		}
		a.Ops = append(a.Ops, ConsolidationOp{Op: OpState, MemoryID: n.m.ID, From: from, To: StateSuperseded, SupersededBy: s.m.ID})
	}
	return a
}

// normTags normalizes tags as the validator does, dropping invalid ones.
func normTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || strings.ContainsFunc(t, func(r rune) bool { return r == ',' || unicode.IsControl(r) }) || slices.Contains(out, t) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// nearPairs unions near duplicates among live[reps]: candidates come from
// locality-sensitive hashing of sign sketches (random hyperplanes realized
// as randomized Hadamard transforms), each candidate pair is checked with
// the exact Cosine, and a pair whose numbers or identifiers differ is never
// merged.
func nearPairs(live []*node, reps []int, uf *unionFind, threshold float64, p *Project) {
	idx := make([]int, 0, len(reps))
	for _, i := range reps {
		if len(live[i].m.Embedding) == p.EmbeddingDim && p.EmbeddingDim > 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) < 2 {
		return
	}
	sk := newSketcher(p.EmbeddingDim)
	sketches := make([]uint64, len(idx)*lshWords)
	// Sketches are independent: compute them on every CPU. Each goroutine
	// writes its own slots, so the result does not depend on scheduling.
	workers := max(1, min(runtime.GOMAXPROCS(0), len(idx)/1024))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			buf := make([]float32, sk.n)
			for k := w; k < len(idx); k += workers {
				sk.sketch(live[idx[k]].m.Embedding, buf, sketches[k*lshWords:(k+1)*lshWords])
			}
		})
	}
	wg.Wait()
	// Sketch bits that two vectors at the threshold differ in, on average,
	// and a generous bound above it: pairs beyond it are not worth a cosine.
	frac := math.Acos(max(-1, min(1, threshold))) / math.Pi
	maxHam := int(2*frac*lshSketchBits) + 64
	tokens := make([]*string, len(idx))
	tok := func(k int) string {
		if tokens[k] == nil {
			s := strings.Join(distinctiveTokens(live[idx[k]].m.Content), "\x00")
			tokens[k] = &s
		}
		return *tokens[k]
	}
	keys, tmp := make([]uint64, len(idx)), make([]uint64, len(idx))
	for b := 0; b < lshBands; b++ {
		w, shift := b*lshBandBits/64, uint(b*lshBandBits%64)
		for k := range idx {
			band := sketches[k*lshWords+w] >> shift & (1<<lshBandBits - 1)
			keys[k] = band<<40 | uint64(live[idx[k]].typeIdx)<<32 | uint64(k)
		}
		sortBandKeys(keys, tmp)
		for s := 0; s < len(keys); {
			e := s + 1
			for e < len(keys) && keys[e]>>32 == keys[s]>>32 {
				e++
			}
			for x := s; x < e; x++ {
				kx := int(uint32(keys[x]))
				for y := x + 1; y < e && y-x <= lshMaxRun; y++ {
					ky := int(uint32(keys[y]))
					a, c := idx[kx], idx[ky]
					if uf.find(a) == uf.find(c) {
						continue
					}
					ham := 0
					for j := 0; j < lshWords; j++ {
						ham += bits.OnesCount64(sketches[kx*lshWords+j] ^ sketches[ky*lshWords+j])
					}
					if ham > maxHam {
						continue
					}
					if Cosine(live[a].m.Embedding, live[c].m.Embedding) < threshold {
						continue
					}
					if tok(kx) != tok(ky) {
						continue
					}
					uf.union(a, c)
				}
			}
			s = e
		}
	}
}

// sortBandKeys sorts keys of nearPairs (band<<40 | type<<32 | k: a 16-bit
// band, a type index below 256, a 32-bit k), given in increasing order of
// k, as slices.Sort would: a stable radix sort on the 24 bits above k, in
// two passes of 12 bits, leaves equal band and type in k order. tmp is
// scratch of the same length.
func sortBandKeys(keys, tmp []uint64) {
	const digit = 12
	var count [1 << digit]int
	src, dst := keys, tmp
	for pass := range 2 {
		shift := uint(32 + pass*digit)
		clear(count[:])
		for _, k := range src {
			count[k>>shift&(1<<digit-1)]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range src {
			d := k >> shift & (1<<digit - 1)
			dst[count[d]] = k
			count[d]++
		}
		src, dst = dst, src
	}
	// Two passes: the result is back in keys.
}

// distinctiveTokens returns the sorted, unique words of s that carry
// numbers or identifiers: any containing a digit, an underscore, a
// camelCase hump, or an inner '.', '/', ':' or '#' (version strings, paths,
// hosts, qualified names). Two memories whose sets differ say different
// things however similar their embeddings are.
func distinctiveTokens(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(",;()[]{}<>\"'`|=", r)
	}) {
		f = strings.TrimFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if f == "" {
			continue
		}
		keep := false
		var prev rune
		for i, r := range f {
			switch {
			case unicode.IsDigit(r), r == '_':
				keep = true
			case i > 0 && strings.ContainsRune("./:#", r):
				keep = true
			case unicode.IsUpper(r) && unicode.IsLower(prev):
				keep = true
			}
			prev = r
		}
		if keep {
			out = append(out, strings.ToLower(f))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sketcher computes sign sketches: bit j is the sign of the projection of
// the vector on a pseudo-random direction, realized as two rounds of random
// sign flips and a fast Walsh–Hadamard transform (padding to a power of
// two), repeated with fresh signs until lshSketchBits bits are produced.
// Only additions, subtractions and negations touch the data, so the bits
// are identical on every platform. The signs come from a PCG with a fixed
// seed.
type sketcher struct {
	dim, n int
	// flips holds 2 sign masks per chain: 1<<31 where the coordinate is
	// negated, else 0. Negating by xor of the sign bit is exactly what
	// unary minus does, without a branch per coordinate on random signs.
	flips [][]uint32
}

func newSketcher(dim int) *sketcher {
	n := 1
	for n < dim {
		n <<= 1
	}
	chains := (lshSketchBits + n - 1) / n
	r := rand.New(rand.NewPCG(lshSeed1, lshSeed2))
	s := &sketcher{dim: dim, n: n}
	for c := 0; c < 2*chains; c++ {
		f := make([]uint32, n)
		for i := range f {
			f[i] = uint32(r.Uint64()&1) << 31
		}
		s.flips = append(s.flips, f)
	}
	return s
}

func (s *sketcher) sketch(v []float32, buf []float32, out []uint64) {
	clear(out)
	bit := 0
	for c := 0; bit < lshSketchBits; c++ {
		f := s.flips[2*c]
		for i, x := range v {
			buf[i] = math.Float32frombits(math.Float32bits(x) ^ f[i])
		}
		for i := len(v); i < len(buf); i++ {
			buf[i] = math.Float32frombits(f[i]) // the padding: a flipped zero
		}
		fwht(buf)
		flip(buf, s.flips[2*c+1])
		fwht(buf)
		for i := 0; i < s.n && bit < lshSketchBits; i++ {
			out[bit/64] |= positive(buf[i]) << uint(bit%64)
			bit++
		}
	}
}

// positive is 1 if x > 0, else 0 (NaN included), without a branch: the
// bits of a positive float32 (+Inf included), read as an unsigned integer,
// lie in [1, 0x7f800000].
func positive(x float32) uint64 {
	return (uint64(math.Float32bits(x)-1) - 0x7f800000) >> 63
}

func flip(v []float32, f []uint32) {
	f = f[:len(v)]
	for i, x := range v {
		v[i] = math.Float32frombits(math.Float32bits(x) ^ f[i])
	}
}

// fwht is the unnormalized fast Walsh–Hadamard transform, in place, for a
// power-of-two length. It does two levels per pass over the data (the
// butterflies of level h and 2h on four elements at once): the same
// additions in the same order as one level per pass, so the same bits,
// with half the loads and stores.
func fwht(a []float32) {
	n := len(a)
	h := 1
	if n >= 4 {
		for i := 0; i+4 <= n; i += 4 {
			q := a[i : i+4 : i+4]
			s0, d0 := q[0]+q[1], q[0]-q[1]
			s1, d1 := q[2]+q[3], q[2]-q[3]
			q[0], q[2] = s0+s1, s0-s1
			q[1], q[3] = d0+d1, d0-d1
		}
		h = 4
	}
	for ; 4*h <= n; h <<= 2 {
		for i := 0; i < n; i += 4 * h {
			q0 := a[i : i+h]
			q1 := a[i+h : i+2*h][:len(q0)]
			q2 := a[i+2*h : i+3*h][:len(q0)]
			q3 := a[i+3*h : i+4*h][:len(q0)]
			for j, x0 := range q0 {
				x1, x2, x3 := q1[j], q2[j], q3[j]
				s0, d0 := x0+x1, x0-x1
				s1, d1 := x2+x3, x2-x3
				q0[j], q2[j] = s0+s1, s0-s1
				q1[j], q3[j] = d0+d1, d0-d1
			}
		}
	}
	if h < n { // an odd number of levels: one left
		x, y := a[:h], a[h:2*h]
		y = y[:len(x)]
		for j, u := range x {
			w := y[j]
			x[j], y[j] = u+w, u-w
		}
	}
}

type unionFind struct{ parent []int32 }

func newUnionFind(n int) *unionFind {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	return &unionFind{p}
}

func (u *unionFind) find(i int) int {
	for int(u.parent[i]) != i {
		u.parent[i] = u.parent[u.parent[i]]
		i = int(u.parent[i])
	}
	return i
}

// union links the root with the larger index under the one with the
// smaller index.
func (u *unionFind) union(a, b int) {
	a, b = u.find(a), u.find(b)
	if a == b {
		return
	}
	if a > b {
		a, b = b, a
	}
	u.parent[b] = int32(a)
}

// ---- episodes ----

type episode struct {
	session string
	events  []*Event
	pending bool
}

// clusterEvents groups events (sorted by time, ID) into episodes.
func clusterEvents(evs []*Event, now time.Time, o ConsolidationOptions, p *Project) []episode {
	bySession := map[string][]*Event{}
	var sessions []string
	for _, e := range evs {
		if _, ok := bySession[e.SessionID]; !ok {
			sessions = append(sessions, e.SessionID)
		}
		bySession[e.SessionID] = append(bySession[e.SessionID], e)
	}
	slices.Sort(sessions)
	var out []episode
	for _, s := range sessions {
		list := bySession[s]
		start := 0
		for i := 1; i <= len(list); i++ {
			if i < len(list) && list[i].Timestamp.Sub(list[i-1].Timestamp) <= o.EventGap {
				continue
			}
			seg := list[start:i]
			start = i
			pending := seg[len(seg)-1].Timestamp.After(now.Add(-o.EventGap))
			for _, c := range splitRelated(seg, o.EventSimilarity) {
				out = append(out, episode{session: s, events: c, pending: pending})
			}
		}
	}
	return out
}

// splitRelated splits a time segment into groups of related events (each
// event compared with up to 32 before it), ordered by first event.
func splitRelated(seg []*Event, sim float64) [][]*Event {
	uf := newUnionFind(len(seg))
	for i := range seg {
		for j := max(0, i-32); j < i; j++ {
			if related(seg[i], seg[j], sim) {
				uf.union(i, j)
			}
		}
	}
	groups := map[int][]*Event{}
	var roots []int
	for i, e := range seg {
		r := uf.find(i)
		if _, ok := groups[r]; !ok {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], e)
	}
	out := make([][]*Event, 0, len(roots))
	for _, r := range roots {
		out = append(out, groups[r])
	}
	return out
}

func related(a, b *Event, sim float64) bool {
	for _, f := range a.Context.Files {
		if slices.Contains(b.Context.Files, f) {
			return true
		}
	}
	if len(a.Embedding) > 0 && len(a.Embedding) == len(b.Embedding) && a.EmbeddingModel == b.EmbeddingModel {
		return Cosine(a.Embedding, b.Embedding) >= sim
	}
	if len(a.Context.Files) > 0 && len(b.Context.Files) > 0 {
		return false
	}
	return true
}

// planCluster turns an episode into a cluster action and, when the memory
// does not exist yet, the memory to create.
func planCluster(c episode, p *Project, o ConsolidationOptions, existing map[ID]*Memory, embs map[ID][]float32, canEmbed bool) (ConsolidationAction, *Memory, *ConsolidationSkip) {
	evIDs := make([]ID, len(c.events))
	parts := make([]string, len(c.events))
	for i, e := range c.events {
		evIDs[i] = e.ID
	}
	sorted := slices.Clone(evIDs)
	slices.Sort(sorted)
	for i, id := range sorted {
		parts[i] = string(id)
	}
	first, last := c.events[0], c.events[len(c.events)-1]
	id := DeriveID(first.Timestamp, append([]string{"episode"}, parts...)...)
	a := ConsolidationAction{Rule: RuleCluster, MemoryIDs: []ID{id}, EventIDs: evIDs, SessionID: c.session,
		Reason: fmt.Sprintf("episode of %d events in session %q from %s to %s", len(c.events), c.session,
			first.Timestamp.UTC().Format(time.RFC3339), last.Timestamp.UTC().Format(time.RFC3339))}
	var m *Memory
	if _, ok := existing[id]; ok {
		a.Reason += "; memory already exists"
	} else {
		m = &Memory{ID: id, ProjectID: p.ID, Content: episodeSummary(c.events, o.Limits.MaxContentBytes),
			MemoryType: TypeSemantic, SessionID: c.session, CreatedAt: truncMS(last.Timestamp),
			EmbeddingModel: p.EmbeddingModel, Usefulness: 0.5}
		var conf float64
		var types []string
		for _, e := range c.events {
			conf += e.Confidence
			types = append(types, e.EventType)
		}
		m.Confidence = conf / float64(len(c.events))
		slices.Sort(types)
		m.Tags = normTags(slices.Compact(types))
		if len(m.Tags) > o.Limits.MaxTags {
			m.Tags = m.Tags[:o.Limits.MaxTags]
		}
		op := ConsolidationOp{Op: OpCreate, MemoryID: id, Memory: m}
		switch v := meanEmbedding(c.events, p); {
		case v != nil:
			m.Embedding = v
		case embs[id] != nil:
			m.Embedding = slices.Clone(embs[id])
		case canEmbed:
			op.NeedsEmbedding = true
		default:
			return a, nil, &ConsolidationSkip{ID: id, Rule: string(RuleCluster),
				Reason: "events lack embeddings of the project's model and no embedder is configured"}
		}
		a.Ops = append(a.Ops, op,
			stateOp(id, StateUnconsolidated, StateConsolidating), stateOp(id, StateConsolidating, StateConsolidated))
	}
	for _, e := range evIDs {
		a.Ops = append(a.Ops, ConsolidationOp{Op: OpEvent, MemoryID: id, EventID: e})
	}
	return a, m, nil
}

// meanEmbedding is the normalized mean of the events' embeddings when all
// of them carry one of the project's model and dimension, else nil.
func meanEmbedding(evs []*Event, p *Project) []float32 {
	sum := make([]float64, p.EmbeddingDim)
	for _, e := range evs {
		if e.EmbeddingModel != p.EmbeddingModel || len(e.Embedding) != p.EmbeddingDim {
			return nil
		}
		for i, x := range e.Embedding {
			sum[i] += float64(x)
		}
	}
	var n float64
	for _, x := range sum {
		n += float64(x * x)
	}
	if n == 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return nil
	}
	n = math.Sqrt(n)
	out := make([]float32, len(sum))
	for i, x := range sum {
		out[i] = float32(x / n)
	}
	return out
}

// episodeSummary is extractive: the first sentence of each event's content
// in time order (repeats dropped), then each distinct learned field, capped
// at max bytes on a rune boundary.
func episodeSummary(evs []*Event, max int) string {
	var b strings.Builder
	seen := map[string]bool{}
	line := func(s string) {
		if s == "" || seen[s] {
			return
		}
		seen[s] = true
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(s)
	}
	for _, e := range evs {
		line(firstSentence(e.Content))
	}
	for _, e := range evs {
		if l := strings.Join(strings.Fields(e.Learned), " "); l != "" {
			line("Learned: " + l)
		}
	}
	s := b.String()
	if strings.TrimSpace(s) == "" {
		s = "Episode of " + strconv.Itoa(len(evs)) + " events"
	}
	return truncUTF8(s, max)
}

func firstSentence(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c == '.' || c == '!' || c == '?') && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t') {
			s = s[:i+1]
			break
		}
	}
	return truncUTF8(strings.Join(strings.Fields(s), " "), maxSentence)
}

func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ---- apply ----

// Consolidate runs the consolidation rules on a project through db: it
// reads the project's memories (page by page) and unconsolidated events,
// plans with [PlanConsolidation] at the DB clock's current time, embeds
// new episode memories with the DB's embedder when their events carry no
// usable vectors, and, unless opts.DryRun, applies the plan in
// transactions of about opts.BatchSize writes. Every write is a change in
// the change log, made and merged exactly as [Tx.Remember], [Tx.SetState]
// and [Tx.UpdateMemory] make and merge theirs: consolidation syncs like any
// other write. All the changes of one memory that only concern it
// (return, promote, rescore, archive) go into one transaction, which
// stores the memory's row once.
//
// An action whose memory changed between planning and applying (a
// different state, tags or usefulness than the plan saw) is skipped and
// reported in Skipped; the next run reconsiders it. Running Consolidate
// again right after it changes nothing.
//
// Consolidate is safe for concurrent use with other writers (each batch is
// one short transaction); two concurrent Consolidate calls on one project
// are safe but wasteful.
func Consolidate(ctx context.Context, db *DB, project ID, opts ConsolidationOptions) (ConsolidationReport, error) {
	if opts.Limits == (Limits{}) {
		opts.Limits = db.Limits()
	}
	p, err := db.Project(ctx, project)
	if err != nil {
		return ConsolidationReport{}, fmt.Errorf("consolidate: %w", err)
	}
	o := opts.withDefaults(&p)
	in := ConsolidationInput{Project: p, Now: truncMS(db.Clock().PhysicalNow())}
	if in.Memories, err = readMemories(ctx, db, project, o.PageSize); err != nil {
		return ConsolidationReport{}, fmt.Errorf("consolidate: %w", err)
	}
	unconsolidated := false
	if in.Events, err = db.Events(ctx, EventFilter{ProjectID: project, Consolidated: &unconsolidated}); err != nil {
		return ConsolidationReport{}, fmt.Errorf("consolidate: %w", err)
	}
	emb := db.Embedder()
	in.CanEmbed = emb != nil && emb.Model() == p.EmbeddingModel && emb.Dim() == p.EmbeddingDim
	plan := PlanConsolidation(in, opts)
	if in.CanEmbed {
		var ids []ID
		var texts []string
		for _, a := range plan.Actions {
			for _, op := range a.Ops {
				if op.Op == OpCreate && op.NeedsEmbedding {
					ids, texts = append(ids, op.MemoryID), append(texts, op.Memory.Content)
				}
			}
		}
		if len(ids) > 0 {
			vs, err := emb.Embed(ctx, texts)
			if err != nil {
				return ConsolidationReport{}, fmt.Errorf("consolidate: embed: %w", err)
			}
			if len(vs) != len(ids) {
				return ConsolidationReport{}, fmt.Errorf("consolidate: embed: %w: %d vectors for %d texts", ErrInvalid, len(vs), len(ids))
			}
			in.Embeddings = make(map[ID][]float32, len(ids))
			for i, id := range ids {
				in.Embeddings[id] = vs[i]
			}
			in.CanEmbed = false // every cluster has its vector now
			plan = PlanConsolidation(in, opts)
		}
	}
	if o.DryRun {
		r := plan.Report()
		r.DryRun = true
		return r, nil
	}
	r := newReport(&plan)
	r.Skipped = append(r.Skipped, plan.Skipped...)
	units := applyUnits(plan.Actions)
	for start := 0; start < len(units); {
		end, n := start, 0
		for end < len(units) && (n == 0 || n+units[end].ops <= o.BatchSize) {
			n += units[end].ops
			end++
		}
		var order []int // indices into plan.Actions, in the order applied
		for _, u := range units[start:end] {
			order = append(order, u.actions...)
		}
		var done []applied
		err := db.Update(ctx, func(tx *Tx) error {
			done = done[:0]
			ct, err := newConsolidationTx(ctx, tx, plan.Actions, order)
			if err != nil {
				return err
			}
			for _, i := range order {
				res, err := ct.apply(ctx, &plan.Actions[i])
				if err != nil {
					return err
				}
				done = append(done, res)
			}
			return ct.flush(ctx)
		})
		if err != nil {
			return r, fmt.Errorf("consolidate: %w", err)
		}
		for k, res := range done {
			a := &plan.Actions[order[k]]
			if res.skip != "" {
				r.Skipped = append(r.Skipped, ConsolidationSkip{ID: a.MemoryIDs[0], Rule: string(a.Rule), Reason: res.skip})
				continue
			}
			r.add(a, res.writes, res.existing)
		}
		start = end
	}
	return r, nil
}

func readMemories(ctx context.Context, db *DB, project ID, page int) ([]Memory, error) {
	var out []Memory
	var after ID
	for {
		ms, err := db.Memories(ctx, MemoryFilter{ProjectID: project, AfterID: after, Limit: page})
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
		if len(ms) < page {
			return out, nil
		}
		after = ms[len(ms)-1].ID
	}
}

// applyUnit is a run of a plan's actions that one transaction applies
// together.
type applyUnit struct {
	actions []int // indices into the plan's actions
	ops     int
}

// applyUnits orders a plan's actions for applying. Cluster and merge
// actions, which involve several memories, come first, in plan order. The
// remaining rules (return, promote, rescore, archive) each touch only the
// memory they are about, so their actions are grouped by that memory, in
// plan order within the group: a memory that is promoted and rescored has
// all its changes in one transaction and its row is written once.
// Reordering across memories changes no outcome, since no action of these
// rules reads another memory.
func applyUnits(actions []ConsolidationAction) []applyUnit {
	var units []applyUnit
	var own []int
	for i := range actions {
		if actions[i].Rule.phase() < RuleReturn.phase() {
			units = append(units, applyUnit{actions: []int{i}, ops: len(actions[i].Ops)})
			continue
		}
		own = append(own, i)
	}
	slices.SortStableFunc(own, func(a, b int) int { return cmp.Compare(actions[a].MemoryIDs[0], actions[b].MemoryIDs[0]) })
	for s := 0; s < len(own); {
		u := applyUnit{}
		e := s
		for ; e < len(own) && actions[own[e]].MemoryIDs[0] == actions[own[s]].MemoryIDs[0]; e++ {
			u.actions = append(u.actions, own[e])
			u.ops += len(actions[own[e]].Ops)
		}
		units = append(units, u)
		s = e
	}
	return units
}

type applied struct {
	skip     string // why the action was skipped, if it was
	writes   int    // ops actually written (reported as Writes)
	existing bool   // a cluster's memory already existed
}

// consolidationTx applies consolidation actions in one transaction. It
// reads every memory the actions name once, up front; then each write is
// emitted into the change log and merged into that in-memory row with
// [MergeMemory], exactly as [Tx.SetState] and [Tx.UpdateMemory] would do,
// and flush stores each changed row once. A memory that is promoted (two
// state changes) and rescored (one put) costs three change-log entries, as
// before, but one row write and one row read instead of three and five.
type consolidationTx struct {
	tx       *Tx
	mems     map[ID]*Memory // rows as this transaction has left them; absent: no such memory
	projects map[ID]*Project
	dirty    []ID // rows to store at flush, in the order first changed
	isDirty  map[ID]bool
}

func newConsolidationTx(ctx context.Context, tx *Tx, actions []ConsolidationAction, order []int) (*consolidationTx, error) {
	seen := map[ID]bool{}
	var ids []ID
	for _, i := range order {
		for _, op := range actions[i].Ops {
			for _, id := range []ID{op.MemoryID, op.SupersededBy} {
				if id != "" && !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
	}
	ct := &consolidationTx{tx: tx, mems: make(map[ID]*Memory, len(ids)), projects: map[ID]*Project{}, isDirty: map[ID]bool{}}
	if len(ids) == 0 {
		return ct, nil
	}
	ms, err := tx.r.Memories(ctx, MemoryFilter{IDs: ids})
	if err != nil {
		return nil, err
	}
	for i := range ms {
		ct.mems[ms[i].ID] = &ms[i]
	}
	return ct, nil
}

// apply carries out one action. An action whose memories changed since
// the plan was made is skipped before it writes anything.
func (ct *consolidationTx) apply(ctx context.Context, a *ConsolidationAction) (applied, error) {
	var res applied
	var checked []ID // ops per action are few: a slice beats a map
	for _, op := range a.Ops {
		switch {
		case op.Op == OpEvent:
			continue
		case op.Op == OpCreate:
			if op.NeedsEmbedding && op.Memory.Embedding == nil {
				return res, fmt.Errorf("%w: memory %s has no embedding", ErrInvalid, op.MemoryID)
			}
			dead, err := ct.tx.r.Tombstoned(ctx, op.MemoryID)
			if err != nil {
				return res, err
			}
			// Made by an earlier run or another device (or deleted since):
			// only link the events.
			res.existing = dead || ct.mems[op.MemoryID] != nil
			checked = append(checked, op.MemoryID)
			continue
		case slices.Contains(checked, op.MemoryID):
			continue // later ops on a memory follow from the first
		}
		checked = append(checked, op.MemoryID)
		cur := ct.mems[op.MemoryID]
		if cur == nil {
			res.skip = "memory " + string(op.MemoryID) + " no longer exists"
			return res, nil
		}
		if why := stale(cur, &op); why != "" {
			res.skip = why
			return res, nil
		}
		if op.Op == OpState && op.To == StateSuperseded {
			switch target := ct.mems[op.SupersededBy]; {
			case target == nil:
				res.skip = "survivor " + string(op.SupersededBy) + " no longer exists"
				return res, nil
			case target.State == StateSuperseded || target.State == StateArchived:
				res.skip = fmt.Sprintf("survivor %s is now %s", target.ID, target.State)
				return res, nil
			}
		}
	}
	for _, op := range a.Ops {
		var err error
		switch op.Op {
		case OpCreate:
			if res.existing {
				continue
			}
			err = ct.create(ctx, *op.Memory)
		case OpUpdate:
			err = ct.update(ctx, &op)
		case OpState:
			if res.existing && a.Rule == RuleCluster && op.MemoryID == a.MemoryIDs[0] {
				continue // an existing memory's state is not this action's to move
			}
			err = ct.setState(ctx, op.MemoryID, op.To, op.SupersededBy)
		case OpEvent:
			var evs []Event
			evs, err = ct.tx.Events(ctx, EventFilter{ID: op.EventID})
			if err != nil {
				break
			}
			if len(evs) == 0 || evs[0].Consolidated {
				continue // gone, or consolidated elsewhere meanwhile
			}
			e := evs[0]
			e.Consolidated, e.ConsolidatedInto = true, op.MemoryID
			_, err = ct.tx.RecordEvent(ctx, e)
		}
		if err != nil {
			return res, fmt.Errorf("%s %s: %w", a.Rule, op.MemoryID, err)
		}
		res.writes++
	}
	return res, nil
}

// create is [Tx.Remember] of a memory the check found neither stored nor
// deleted, on the in-memory rows.
func (ct *consolidationTx) create(ctx context.Context, m Memory) error {
	p, err := ct.project(ctx, m.ProjectID)
	if err != nil {
		return fmt.Errorf("remember: project %s: %w", m.ProjectID, err)
	}
	if err := ct.tx.prepareMemory(ctx, &m, p); err != nil {
		return fmt.Errorf("remember: %w", err)
	}
	vec := m.Embedding
	m.Embedding = nil
	c, err := ct.tx.emit(ctx, KindMemoryPut, m.ProjectID, m.ID, m, vec)
	if err != nil {
		return fmt.Errorf("remember: %w", err)
	}
	return ct.merge(m.ID, nil, c)
}

// update is [Tx.UpdateMemory] setting the op's tags and usefulness, on the
// in-memory row.
func (ct *consolidationTx) update(ctx context.Context, op *ConsolidationOp) error {
	cur := ct.mems[op.MemoryID]
	if cur == nil {
		return fmt.Errorf("update memory: get memory %s: %w", op.MemoryID, ErrNotFound)
	}
	p, err := ct.project(ctx, cur.ProjectID)
	if err != nil {
		return fmt.Errorf("update memory: %w", err)
	}
	next := cur.Clone()
	if op.Tags != nil {
		next.Tags = slices.Clone(op.Tags)
	}
	if op.Usefulness != nil {
		next.Usefulness = *op.Usefulness
	}
	if err := ct.tx.prepareMemory(ctx, &next, p); err != nil {
		return fmt.Errorf("update memory: %w", err)
	}
	payload := next // a shallow copy: the payload is only encoded
	payload.Embedding, payload.AccessByDevice = nil, nil
	c, err := ct.tx.emit(ctx, KindMemoryPut, next.ProjectID, next.ID, payload, next.Embedding)
	if err != nil {
		return fmt.Errorf("update memory: %w", err)
	}
	return ct.merge(cur.ID, cur, c)
}

// setState is [Tx.SetState] on the in-memory row: the state machine
// decides, and superseded_by must name another memory that exists.
func (ct *consolidationTx) setState(ctx context.Context, id ID, to State, by ID) error {
	cur := ct.mems[id]
	if cur == nil {
		return fmt.Errorf("set state: get memory %s: %w", id, ErrNotFound)
	}
	if err := CheckTransition(cur.State, to); err != nil {
		return fmt.Errorf("set state %s: %w", id, err)
	}
	if to == StateSuperseded {
		if by == "" || by == id {
			return fmt.Errorf("set state %s: %w", id, fieldErr("superseded_by", "must name another memory"))
		}
		if ct.mems[by] == nil {
			return fmt.Errorf("set state %s: superseded_by: get memory %s: %w", id, by, ErrNotFound)
		}
	}
	p := StatePayload{From: cur.State, To: to, SupersededBy: by, AtMS: UnixMilli(ct.tx.now())}
	c, err := ct.tx.emit(ctx, KindMemoryState, cur.ProjectID, cur.ID, p, nil)
	if err != nil {
		return fmt.Errorf("set state %s: %w", id, err)
	}
	return ct.merge(id, cur, c)
}

// merge applies the change c, just emitted, to the in-memory row of
// memory id (cur, nil if there is none yet).
func (ct *consolidationTx) merge(id ID, cur *Memory, c *Change) error {
	eff := MergeMemory(cur, false, c)
	if eff.Status != StatusApplied || eff.Delete {
		return fmt.Errorf("%s %s: %w: %s", c.Kind, c.EntityID, ErrConflict, eff.Reason)
	}
	ct.mems[id] = eff.Memory
	if !ct.isDirty[id] {
		ct.isDirty[id] = true
		ct.dirty = append(ct.dirty, id)
	}
	return nil
}

func (ct *consolidationTx) project(ctx context.Context, id ID) (*Project, error) {
	if p, ok := ct.projects[id]; ok {
		return p, nil
	}
	p, err := ct.tx.r.Project(ctx, id)
	if err != nil {
		return nil, err
	}
	ct.projects[id] = &p
	return &p, nil
}

// flush stores every row the transaction changed.
func (ct *consolidationTx) flush(ctx context.Context) error {
	w, err := ct.tx.writer()
	if err != nil {
		return err
	}
	for _, id := range ct.dirty {
		if err := w.PutMemory(ctx, *ct.mems[id]); err != nil {
			return fmt.Errorf("put memory %s: %w", id, err)
		}
	}
	return nil
}

// stale says why op no longer fits cur, or "".
func stale(cur *Memory, op *ConsolidationOp) string {
	switch op.Op {
	case OpState:
		if cur.State != op.From {
			return fmt.Sprintf("memory %s is now %s (planned from %s)", cur.ID, cur.State, op.From)
		}
	case OpUpdate:
		if op.Tags != nil && !slices.Equal(normTags(cur.Tags), normTags(op.BaseTags)) {
			return fmt.Sprintf("tags of memory %s changed since planning", cur.ID)
		}
		if op.Usefulness != nil && cur.Usefulness != *op.FromUsefulness {
			return fmt.Sprintf("usefulness of memory %s changed since planning", cur.ID)
		}
		if cur.State == StateSuperseded || cur.State == StateArchived {
			return fmt.Sprintf("memory %s is now %s", cur.ID, cur.State)
		}
	}
	return ""
}
