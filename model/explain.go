package model

import (
	"context"
	"math"
	"time"
)

// state is what one Score call keeps for its Explain, until Release: a
// copy of the rows, the contributions, the rules' scores of the products
// the model leaves out, and the perturbations measured so far.
type state struct {
	m            *ONNX
	n            int
	x            []float32 // n rows of the schema
	contrib      []float32 // n × F × P, in the model's order (contributions)
	rulesOut     []float32 // n × catalog products
	rulesExplain func(row, product int, dst []string) []string
	measured     []measured
	attr         []float32
}

// measured is the perturbation of one row for one session: per perturbed
// feature, its term in the log-odds of each column of the session's parts.
type measured struct {
	row, session int
	ok           bool
	off          int // into state.attr
}

// explainBudget bounds the model call that measures an item's reasons.
const explainBudget = 20 * time.Millisecond

func (m *ONNX) state(n int, x []float32) *state {
	st, _ := m.states.Get().(*state)
	if st == nil {
		st = &state{m: m}
	}
	st.n = n
	grow := func(b []float32, size int) []float32 {
		if cap(b) < size {
			return make([]float32, size)
		}
		return b[:size]
	}
	st.x = grow(st.x, n*m.schemaN)
	copy(st.x, x[:n*m.schemaN])
	st.contrib = nil
	if m.explains {
		st.contrib = grow(st.contrib[:0:cap(st.contrib)], n*len(m.cols)*m.parts[0].width)
	}
	if m.byRules != nil {
		st.rulesOut = grow(st.rulesOut, n*m.products)
	}
	st.rulesExplain = nil
	st.measured = st.measured[:0]
	st.attr = st.attr[:0]
	return st
}

func (st *state) release() { st.m.states.Put(st) }

// explain appends the reason codes of one row's product, strongest first.
func (st *state) explain(row, k int, dst []string) []string {
	m := st.m
	pi := m.partOf[k]
	switch {
	case pi < 0:
		if st.rulesExplain == nil {
			return dst
		}
		return st.rulesExplain(row, k, dst)
	case m.explains:
		p := &m.parts[0]
		j := slicesIndex(p.catalog, k)
		F, P := len(m.cols), p.width
		base := row * F * P
		return topReasons(m.reasons, func(f int) float32 { return st.contrib[base+f*P+p.outCols[j]] }, dst)
	}
	p := &m.parts[pi]
	me := st.measure(row, p.session)
	if !me.ok {
		return dst
	}
	j := slicesIndex(p.catalog, k)
	attr := st.attr[me.off:]
	cols := m.sessions[p.session].cols
	return topReasons(m.reasons, func(f int) float32 {
		if i := m.perturbAt[f]; i > 0 {
			return attr[(i-1)*cols+p.colOff+j]
		}
		return 0
	}, dst)
}

func slicesIndex(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// measure runs, once per row and session, the row and one copy of it per
// reasoned feature set to the reference value; a feature's term is how
// much the log-odds fall without it. A call that fails or runs out of
// time measures nothing: the item gets the general reason.
func (st *state) measure(row, si int) measured {
	for _, me := range st.measured {
		if me.row == row && me.session == si {
			return me
		}
	}
	m := st.m
	me := measured{row: row, session: si, off: len(st.attr)}
	ctx, cancel := context.WithTimeout(context.Background(), explainBudget)
	defer cancel()
	w, err := m.borrow(ctx)
	if err != nil {
		st.measured = append(st.measured, me)
		return me
	}
	defer m.give(w)
	s := w.sizes[sizeProbe]
	m.fill(s, st.x[row*m.schemaN:], 1)
	in := s.in.GetData()
	F := len(m.cols)
	for i, f := range m.perturb {
		r := in[(i+1)*F : (i+2)*F]
		copy(r, in[:F])
		r[f] = m.ref[f]
	}
	r := &s.runs[si]
	if err := r.session.RunWithOptions(w.ro); err != nil {
		st.measured = append(st.measured, me)
		return me
	}
	for i := range m.perturb {
		for oi, pi := range m.sessions[si].parts {
			p := &m.parts[pi]
			res := r.outs[oi].GetData()
			for _, c := range p.outCols {
				st.attr = append(st.attr, float32(logOdds(res[c])-logOdds(res[(i+1)*p.width+c])))
			}
		}
	}
	me.ok = true
	st.measured = append(st.measured, me)
	return me
}

// logOdds is the logit of a probability, kept finite at 0 and 1.
func logOdds(p float32) float64 {
	q := math.Min(math.Max(float64(p), 1e-7), 1-1e-7)
	return math.Log(q / (1 - q))
}

// topReasons appends the reason codes of the features whose terms raised
// the log-odds the most, strongest first, at most three, each code once.
func topReasons(reasons []string, term func(f int) float32, dst []string) []string {
	var top [3]struct {
		code string
		v    float32
	}
	for f, code := range reasons {
		if code == "" {
			continue
		}
		v := term(f)
		if !(v > 0) {
			continue
		}
		// Keep the strongest term per code, in a top three.
		pos := -1
		for i := range top {
			if top[i].code == code {
				pos = i
				break
			}
		}
		if pos >= 0 {
			if v <= top[pos].v {
				continue
			}
			top[pos].v = v
		} else {
			last := len(top) - 1
			if top[last].code != "" && v <= top[last].v {
				continue
			}
			top[last].code, top[last].v = code, v
			pos = last
		}
		for pos > 0 && (top[pos-1].code == "" || top[pos].v > top[pos-1].v) {
			top[pos], top[pos-1] = top[pos-1], top[pos]
			pos--
		}
	}
	for _, t := range top {
		if t.code != "" {
			dst = append(dst, t.code)
		}
	}
	return dst
}
