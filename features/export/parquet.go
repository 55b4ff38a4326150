package export

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/directops/nbp/features"
)

// cellKind is how a Parquet column's values are turned into CSV text.
type cellKind uint8

const (
	cellString cellKind = iota
	cellBool
	cellInt32
	cellUint32
	cellInt64
	cellUint64
	cellFloat
	cellDouble
	cellDecimal
	cellDate
	cellTimestamp
	cellInt96
)

// parquetCell says how to read one column.
type parquetCell struct {
	kind     cellKind
	physical parquet.Kind  // of a decimal
	scale    int           // of a decimal
	unit     time.Duration // of a timestamp
}

// maxDecimalScale and maxDecimalBytes bound the decimals accepted: a
// 256-bit decimal (precision 76) is twice the widest the warehouses write.
const (
	maxDecimalScale = 76
	maxDecimalBytes = 32
)

// julianUnixEpoch is 1970-01-01 as a Julian day number, the day part of an
// INT96 timestamp.
const julianUnixEpoch = 2440588

// parquetCellOf returns how to read a column of type t into a column of
// the header (field f, or one of colID, colSalutation, colUpdatedAt).
func parquetCellOf(t parquet.Type, f features.Field) (parquetCell, error) {
	c, err := parquetCellOfType(t)
	if err != nil {
		return c, err
	}
	var ok bool
	switch f {
	case colID:
		ok = c.kind == cellString || c.kind == cellInt32 || c.kind == cellUint32 || c.kind == cellInt64 || c.kind == cellUint64
	case colSalutation:
		ok = c.kind == cellString
	case colUpdatedAt:
		ok = c.kind == cellString || c.kind == cellTimestamp || c.kind == cellInt96
	default:
		switch f.Spec().Kind {
		case features.Number, features.Flag:
			ok = c.kind != cellDate && c.kind != cellTimestamp && c.kind != cellInt96
		case features.RegionKey, features.Tolerance:
			ok = c.kind == cellString
		case features.Date:
			ok = c.kind == cellString || c.kind == cellDate
		}
	}
	if !ok {
		return c, fmt.Errorf("type %s not accepted for %s", t, columnKindName(f))
	}
	return c, nil
}

// parquetCellOfType classifies a Parquet type, or refuses it.
func parquetCellOfType(t parquet.Type) (parquetCell, error) {
	phys := t.Kind()
	bad := func() (parquetCell, error) { return parquetCell{}, fmt.Errorf("type %s not accepted", t) }
	var lt format.LogicalTypeValue
	if l := t.LogicalType(); l != nil {
		lt = l.Value
	}
	switch l := lt.(type) {
	case nil:
		switch phys {
		case parquet.Boolean:
			return parquetCell{kind: cellBool}, nil
		case parquet.Int32:
			return parquetCell{kind: cellInt32}, nil
		case parquet.Int64:
			return parquetCell{kind: cellInt64}, nil
		case parquet.Int96:
			return parquetCell{kind: cellInt96}, nil
		case parquet.Float:
			return parquetCell{kind: cellFloat}, nil
		case parquet.Double:
			return parquetCell{kind: cellDouble}, nil
		case parquet.ByteArray:
			return parquetCell{kind: cellString}, nil
		}
	case *format.StringType, *format.EnumType:
		if phys == parquet.ByteArray {
			return parquetCell{kind: cellString}, nil
		}
	case *format.IntType:
		switch {
		case phys == parquet.Int32 && l.IsSigned:
			return parquetCell{kind: cellInt32}, nil
		case phys == parquet.Int32:
			return parquetCell{kind: cellUint32}, nil
		case phys == parquet.Int64 && l.IsSigned:
			return parquetCell{kind: cellInt64}, nil
		case phys == parquet.Int64:
			return parquetCell{kind: cellUint64}, nil
		}
	case *format.DecimalType:
		if l.Scale < 0 || l.Scale > maxDecimalScale {
			return bad()
		}
		switch phys {
		case parquet.Int32, parquet.Int64, parquet.ByteArray:
		case parquet.FixedLenByteArray:
			if n := t.Length(); n < 1 || n > maxDecimalBytes {
				return bad()
			}
		default:
			return bad()
		}
		return parquetCell{kind: cellDecimal, physical: phys, scale: int(l.Scale)}, nil
	case *format.DateType:
		if phys == parquet.Int32 {
			return parquetCell{kind: cellDate}, nil
		}
	case *format.TimestampType:
		// A timestamp not adjusted to UTC is a wall-clock reading in no
		// known zone; the CSV's RFC 3339 times always carry their offset.
		if phys != parquet.Int64 || !l.IsAdjustedToUTC || l.Unit.Value == nil {
			return bad()
		}
		return parquetCell{kind: cellTimestamp, unit: l.Unit.Value.Duration()}, nil
	}
	return bad()
}

func columnKindName(f features.Field) string {
	switch f {
	case colID:
		return "a customer id"
	case colSalutation:
		return "a salutation"
	case colUpdatedAt:
		return "a time"
	}
	switch f.Spec().Kind {
	case features.Flag:
		return "a 0/1 flag"
	case features.RegionKey:
		return "a region code"
	case features.Tolerance:
		return "a risk tolerance"
	case features.Date:
		return "a date"
	default:
		return "a number"
	}
}

// text returns a value as the CSV export would write it. It returns an
// error only for a value that no CSV cell could hold.
func (c *parquetCell) text(v parquet.Value) (string, error) {
	if v.IsNull() {
		return "", nil
	}
	switch c.kind {
	case cellString:
		return string(v.ByteArray()), nil
	case cellBool:
		if v.Boolean() {
			return "1", nil
		}
		return "0", nil
	case cellInt32:
		return strconv.FormatInt(int64(v.Int32()), 10), nil
	case cellUint32:
		return strconv.FormatUint(uint64(uint32(v.Int32())), 10), nil
	case cellInt64:
		return strconv.FormatInt(v.Int64(), 10), nil
	case cellUint64:
		return strconv.FormatUint(uint64(v.Int64()), 10), nil
	case cellFloat:
		return strconv.FormatFloat(float64(v.Float()), 'g', -1, 32), nil
	case cellDouble:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64), nil
	case cellDecimal:
		return c.decimalText(v)
	case cellDate:
		return time.Unix(int64(v.Int32())*86400, 0).UTC().Format(time.DateOnly), nil
	case cellTimestamp:
		n := v.Int64()
		var t time.Time
		switch c.unit {
		case time.Millisecond:
			t = time.UnixMilli(n)
		case time.Microsecond:
			t = time.UnixMicro(n)
		default:
			t = time.Unix(0, n)
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	case cellInt96:
		// Eight bytes of nanoseconds in the day, then the Julian day.
		x := v.Int96()
		nanos := uint64(x[1])<<32 | uint64(x[0])
		if nanos >= 86400*uint64(time.Second) {
			return "", errors.New("INT96 time of day out of range")
		}
		days := int64(int32(x[2])) - julianUnixEpoch
		return time.Unix(days*86400, int64(nanos)).UTC().Format(time.RFC3339Nano), nil
	}
	return "", fmt.Errorf("unknown cell kind %d", c.kind)
}

// decimalText writes a decimal's unscaled value with its scale.
func (c *parquetCell) decimalText(v parquet.Value) (string, error) {
	var neg bool
	var digits string
	switch c.physical {
	case parquet.Int32, parquet.Int64:
		var n int64
		if c.physical == parquet.Int32 {
			n = int64(v.Int32())
		} else {
			n = v.Int64()
		}
		u := uint64(n)
		if n < 0 {
			neg, u = true, -u
		}
		digits = strconv.FormatUint(u, 10)
	default:
		// Big-endian two's complement.
		b := v.ByteArray()
		if len(b) == 0 || len(b) > maxDecimalBytes {
			return "", fmt.Errorf("decimal of %d bytes", len(b))
		}
		x := new(big.Int).SetBytes(b)
		if b[0]&0x80 != 0 {
			x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		neg = x.Sign() < 0
		digits = x.Abs(x).String()
	}
	var sb strings.Builder
	if neg {
		sb.WriteByte('-')
	}
	if c.scale == 0 {
		sb.WriteString(digits)
		return sb.String(), nil
	}
	if pad := c.scale + 1 - len(digits); pad > 0 {
		digits = strings.Repeat("0", pad) + digits
	}
	point := len(digits) - c.scale
	sb.WriteString(digits[:point])
	sb.WriteByte('.')
	sb.WriteString(digits[point:])
	return sb.String(), nil
}

// ParquetReader streams the vectors of a Parquet export.
//
// A Parquet export has the columns of a CSV export (see ParseHeader), each
// a flat top-level column, required or optional; a null is an empty cell.
// The Parquet types accepted for each kind of column are:
//
//	customer_id          string; INT32 or INT64 (written in decimal)
//	salutation           string
//	updated_at           string (RFC 3339); TIMESTAMP adjusted to UTC; INT96
//	Number and Flag      string; BOOLEAN (0 or 1); INT32, INT64, signed or
//	                     not; FLOAT; DOUBLE; DECIMAL on any physical type
//	RegionKey, Tolerance string
//	Date                 string (YYYY-MM-DD); DATE
//
// A string is a BYTE_ARRAY with no annotation, STRING or ENUM. Any other
// type, a nested or a repeated column refuses the file as a bad header
// does. Every value is turned into the text a CSV export would hold for it
// (numbers in their shortest decimal form, dates and times in UTC) and
// checked by the same rules (Header.ParseRow), so a Parquet export and a CSV
// export of the same values load the same vectors and reject the same rows
// for the same reasons. A NaN or infinite FLOAT or DOUBLE is not a number,
// as in CSV, and rejects its row: a missing value is a null.
//
// Pages may be uncompressed or compressed with Snappy, gzip, Brotli or
// Zstandard; a file with LZ4 or LZO pages is refused. A corrupt file is an
// error, never a panic: the footer and each row group's page headers are
// checked before the decoder trusts the sizes they claim.
type ParquetReader struct {
	h       *Header
	now     time.Time
	cells   []parquetCell // by leaf column index
	r       io.ReaderAt
	meta    *format.FileMetaData
	dataEnd int64 // where the footer starts
	groups  []parquet.RowGroup
	group   int // the next row group to open
	rows    parquet.Rows
	eof     bool // rows has no more after buf
	buf     []parquet.Row
	i, n    int      // buf[i:n] are still to be returned
	rec     []string // the row as CSV cells
	row     int      // rows returned so far
	err     error    // sticky: io.EOF or why the input cannot be read
}

// parquetBatch is how many rows a ParquetReader decodes at a time.
const parquetBatch = 128

// NewParquetReader opens a Parquet export of the given size and checks its
// header as NewReader does a CSV export's (ParseHeader), the types of its
// columns and their compression. now is the updated-at time of rows
// without one. It reads the file's footer only; rows are read as Next asks
// for them.
func NewParquetReader(r io.ReaderAt, size int64, now time.Time) (pr *ParquetReader, err error) {
	defer recoverMalformed(&err)
	dataEnd, err := checkParquetFooter(r, size)
	if err != nil {
		return nil, err
	}
	f, err := parquet.OpenFile(r, size,
		parquet.SkipPageIndex(true),
		parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(64<<10),
	)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	root := f.Root()
	if root == nil || root.Leaf() {
		return nil, errors.New("parquet: header: no columns")
	}
	cols := root.Columns()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name()
	}
	h, err := ParseHeader(names)
	if err != nil {
		return nil, err
	}
	cells := make([]parquetCell, len(cols))
	var probs []string
	for i, c := range cols {
		if !c.Leaf() || c.Repeated() {
			probs = append(probs, fmt.Sprintf("column %q: nested or repeated", names[i]))
			continue
		}
		if c.Index() != i {
			probs = append(probs, fmt.Sprintf("column %q: leaf %d at position %d", names[i], c.Index(), i))
			continue
		}
		cell, err := parquetCellOf(c.Type(), h.field[i])
		if err != nil {
			probs = append(probs, fmt.Sprintf("column %q: %v", names[i], err))
			continue
		}
		cells[i] = cell
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("header: %s", strings.Join(probs, "; "))
	}
	meta := f.Metadata()
	if len(meta.RowGroups) != len(f.RowGroups()) {
		return nil, fmt.Errorf("parquet: %d row groups in the footer, %d read", len(meta.RowGroups), len(f.RowGroups()))
	}
	for g := range meta.RowGroups {
		chunks := meta.RowGroups[g].Columns
		if len(chunks) != len(cols) {
			return nil, fmt.Errorf("parquet: row group %d: %d columns, want %d", g, len(chunks), len(cols))
		}
		for c := range chunks {
			switch codec := chunks[c].MetaData.Codec; codec {
			case format.Uncompressed, format.Snappy, format.Gzip, format.Brotli, format.Zstd:
			default:
				// The LZ4 decoder loops for ever on a corrupt page.
				return nil, fmt.Errorf("parquet: column %q: compression %s not accepted", names[c], codec)
			}
		}
	}
	return &ParquetReader{
		h:       h,
		now:     now,
		cells:   cells,
		r:       r,
		meta:    meta,
		dataEnd: dataEnd,
		groups:  f.RowGroups(),
		buf:     make([]parquet.Row, parquetBatch),
		rec:     make([]string, len(cols)),
	}, nil
}

// checkParquetFooter refuses a file too short to be Parquet, or whose
// footer claims more bytes than the file has or is not well-formed, before
// the Parquet decoder reads it. It returns where the footer starts.
func checkParquetFooter(r io.ReaderAt, size int64) (int64, error) {
	const magic = "PAR1"
	if size < int64(2*len(magic)+4) {
		return 0, fmt.Errorf("parquet: %d bytes: not a Parquet file", size)
	}
	var tail [8]byte
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return 0, fmt.Errorf("parquet: read footer: %w", err)
	}
	if string(tail[4:]) != magic {
		return 0, errors.New("parquet: not a Parquet file (or an encrypted one)")
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > size-12 {
		return 0, fmt.Errorf("parquet: footer of %d bytes in a file of %d", n, size)
	}
	footer := make([]byte, n)
	if _, err := r.ReadAt(footer, size-8-n); err != nil {
		return 0, fmt.Errorf("parquet: read footer: %w", err)
	}
	if err := checkThrift(footer); err != nil {
		return 0, fmt.Errorf("parquet: footer: %w", err)
	}
	return size - 8 - n, nil
}

// Bounds on a page, far above what any writer makes (about 1 MiB and
// 20,000 rows): the decoder allocates what a page header claims before
// reading the page.
const (
	maxParquetPageBytes  = 64 << 20
	maxParquetPageValues = 1 << 24
)

// checkPages reads the page headers of row group g and checks that every
// page lies within its column chunk, which lies within the file, and is
// within the bounds above.
func (p *ParquetReader) checkPages(g int) error {
	rg := &p.meta.RowGroups[g]
	var win []byte     // the bytes of the chunk from winAt
	var winAt int64    // offset of win in the file
	const least = 4096 // bytes of a page header read at once, at least
	for c := range rg.Columns {
		md := &rg.Columns[c].MetaData
		start := md.DataPageOffset
		if md.DictionaryPageOffset != 0 {
			start = md.DictionaryPageOffset
		}
		n := md.TotalCompressedSize
		if start < 4 || n < 0 || start > p.dataEnd || n > p.dataEnd-start {
			return fmt.Errorf("parquet: row group %d, column %d: chunk of %d bytes at %d, outside the file", g, c, n, start)
		}
		end := start + n
		win, winAt = win[:0], start
		for pos := start; pos < end; {
			want := int64(least)
			var h pageHeader
			var hlen int
			for {
				if pos < winAt || pos+want > winAt+int64(len(win)) && winAt+int64(len(win)) < end {
					// Read from pos: want bytes, or to the end of the chunk.
					size := min(max(want, 64<<10), end-pos)
					if int64(cap(win)) < size {
						win = make([]byte, size)
					}
					win, winAt = win[:size], pos
					if _, err := p.r.ReadAt(win, pos); err != nil {
						return fmt.Errorf("parquet: row group %d, column %d: read page header: %w", g, c, err)
					}
				}
				var err error
				h, hlen, err = scanPageHeader(win[pos-winAt:])
				if err == nil {
					break
				}
				if winAt+int64(len(win)) >= end || want >= maxParquetPageBytes {
					return fmt.Errorf("parquet: row group %d, column %d: page header at %d: %w", g, c, pos, err)
				}
				want *= 4 // a long header (statistics): read more
			}
			switch {
			case h.compressed < 0 || h.compressed > maxParquetPageBytes,
				h.uncompressed < 0 || h.uncompressed > maxParquetPageBytes,
				h.values < 0 || h.values > maxParquetPageValues:
				return fmt.Errorf("parquet: row group %d, column %d: page at %d: %d bytes (%d uncompressed), %d values: out of bounds",
					g, c, pos, h.compressed, h.uncompressed, h.values)
			}
			pos += int64(hlen) + h.compressed
			if pos > end {
				return fmt.Errorf("parquet: row group %d, column %d: page beyond its chunk", g, c)
			}
		}
	}
	return nil
}

// pageHeader is what checkPages needs of a Parquet page header.
type pageHeader struct {
	uncompressed, compressed, values int64
}

// scanPageHeader reads the page header (a Thrift struct) at the start of
// b: its sizes, its number of values and its length.
func scanPageHeader(b []byte) (pageHeader, int, error) {
	var h pageHeader
	t := thriftScanner{b: b}
	err := t.fields(func(id int64, typ byte) (bool, error) {
		switch {
		case (id == 2 || id == 3) && typ == thriftI32:
			x, err := t.varint()
			if id == 2 {
				h.uncompressed = x
			} else {
				h.compressed = x
			}
			return true, err
		case (id == 5 || id == 7 || id == 8) && typ == thriftStruct:
			// data, dictionary and data v2 page headers: num_values is
			// their field 1.
			return true, t.fields(func(id int64, typ byte) (bool, error) {
				if id == 1 && typ == thriftI32 {
					x, err := t.varint()
					h.values = x
					return true, err
				}
				return false, nil
			}, 1)
		}
		return false, nil
	}, 0)
	return h, t.i, err
}

// checkThrift checks that b starts with a well-formed struct in Thrift's
// compact protocol whose every list, map and string fits in b. The
// decoder allocates what a list's header claims before reading it, so a
// footer of a few bytes could otherwise ask for gigabytes.
func checkThrift(b []byte) error {
	t := thriftScanner{b: b}
	return t.value(thriftStruct, 0)
}

// Thrift compact protocol types.
const (
	thriftTrue   = 1
	thriftFalse  = 2
	thriftByte   = 3
	thriftI16    = 4
	thriftI32    = 5
	thriftI64    = 6
	thriftDouble = 7
	thriftBinary = 8
	thriftList   = 9
	thriftSet    = 10
	thriftMap    = 11
	thriftStruct = 12
	thriftUUID   = 13
)

// thriftMaxDepth bounds the nesting of structs, lists and maps.
const thriftMaxDepth = 64

type thriftScanner struct {
	b []byte
	i int
}

var errThrift = errors.New("malformed thrift")

func (t *thriftScanner) skip(n uint64) error {
	if n > uint64(len(t.b)-t.i) {
		return errThrift
	}
	t.i += int(n)
	return nil
}

func (t *thriftScanner) byte() (byte, error) {
	if t.i >= len(t.b) {
		return 0, errThrift
	}
	t.i++
	return t.b[t.i-1], nil
}

func (t *thriftScanner) uvarint() (uint64, error) {
	x, n := binary.Uvarint(t.b[t.i:])
	if n <= 0 {
		return 0, errThrift
	}
	t.i += n
	return x, nil
}

// varint reads a zigzag-encoded integer.
func (t *thriftScanner) varint() (int64, error) {
	x, n := binary.Varint(t.b[t.i:])
	if n <= 0 {
		return 0, errThrift
	}
	t.i += n
	return x, nil
}

// fields reads the fields of a struct to its end. field is told of each
// field's id and type, and reads the value if it reports true; otherwise
// the value is skipped.
func (t *thriftScanner) fields(field func(id int64, typ byte) (bool, error), depth int) error {
	var id int64
	for {
		h, err := t.byte()
		if err != nil {
			return err
		}
		if h == 0 {
			return nil // stop
		}
		if d := h >> 4; d != 0 {
			id += int64(d)
		} else if id, err = t.varint(); err != nil {
			return err
		}
		typ := h & 0x0f
		if typ == thriftTrue || typ == thriftFalse {
			continue // the value is the type
		}
		read, err := field(id, typ)
		if err != nil {
			return err
		}
		if !read {
			if err := t.value(typ, depth+1); err != nil {
				return err
			}
		}
	}
}

// value skips a value of type typ, checking it fits.
func (t *thriftScanner) value(typ byte, depth int) error {
	if depth > thriftMaxDepth {
		return errThrift
	}
	switch typ {
	case thriftTrue, thriftFalse, thriftByte:
		return t.skip(1)
	case thriftI16, thriftI32, thriftI64:
		_, err := t.uvarint()
		return err
	case thriftDouble:
		return t.skip(8)
	case thriftUUID:
		return t.skip(16)
	case thriftBinary:
		n, err := t.uvarint()
		if err != nil {
			return err
		}
		return t.skip(n)
	case thriftList, thriftSet:
		h, err := t.byte()
		if err != nil {
			return err
		}
		n, elem := uint64(h>>4), h&0x0f
		if n == 15 {
			if n, err = t.uvarint(); err != nil {
				return err
			}
		}
		// Every element takes a byte at least.
		if n > uint64(len(t.b)-t.i) {
			return errThrift
		}
		for ; n > 0; n-- {
			if err := t.value(elem, depth+1); err != nil {
				return err
			}
		}
		return nil
	case thriftMap:
		n, err := t.uvarint()
		if err != nil || n == 0 {
			return err
		}
		kv, err := t.byte()
		if err != nil {
			return err
		}
		if n > uint64(len(t.b)-t.i)/2 {
			return errThrift
		}
		for ; n > 0; n-- {
			if err := t.value(kv>>4, depth+1); err != nil {
				return err
			}
			if err := t.value(kv&0x0f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case thriftStruct:
		return t.fields(func(int64, byte) (bool, error) { return false, nil }, depth)
	}
	return errThrift
}

// recoverMalformed turns a panic of the Parquet decoder, which trusts the
// file more than it should, into an error.
func recoverMalformed(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("parquet: malformed file: %v", p)
	}
}

// Next returns the next customer. A bad row is returned as a *RowError
// (wrapping ErrBadRow) whose Line is the row's number: data rows are
// counted from 1 across all row groups (a Parquet file has no header
// line, so row n of a Parquet export is line n+1 of the same CSV export
// when no field spans lines). The reader can go on after a bad row. Next
// returns io.EOF at the end, and any other error when the file itself
// cannot be read (the reader cannot go on after that).
func (p *ParquetReader) Next() (id string, v features.Vector, err error) {
	if p.err != nil {
		return "", features.Vector{}, p.err
	}
	defer func() {
		if perr := recover(); perr != nil {
			p.err = fmt.Errorf("parquet: malformed file: %v", perr)
			id, v, err = "", features.Vector{}, p.err
		}
	}()
	if err := p.fill(); err != nil {
		p.err = err
		return "", features.Vector{}, err
	}
	row := p.buf[p.i]
	p.i++
	p.row++
	for i := range p.rec {
		p.rec[i] = ""
	}
	for _, val := range row {
		c := val.Column()
		if c < 0 || c >= len(p.rec) {
			p.err = fmt.Errorf("parquet: row %d: value of column %d, want fewer than %d", p.row, c, len(p.rec))
			return "", features.Vector{}, p.err
		}
		s, err := p.cells[c].text(val)
		if err != nil {
			return "", features.Vector{}, &RowError{Line: p.row, Err: fmt.Errorf("%w: %s: %v", ErrBadRow, p.h.columns[c], err)}
		}
		p.rec[c] = s
	}
	id, v, err = p.h.ParseRow(p.rec, p.now)
	if err != nil {
		return "", features.Vector{}, &RowError{Line: p.row, Err: err}
	}
	return id, v, nil
}

// fill makes sure buf holds a row to return, reading the next batch (from
// the next row group when need be). It returns io.EOF after the last row.
func (p *ParquetReader) fill() error {
	for empty := 0; p.i >= p.n; {
		if p.rows != nil && p.eof {
			// Close only now: the rows returned last may point into
			// the pages it releases.
			_ = p.rows.Close()
			p.rows = nil
		}
		if p.rows == nil {
			if p.group >= len(p.groups) {
				return io.EOF
			}
			if err := p.checkPages(p.group); err != nil {
				return err
			}
			p.rows = p.groups[p.group].Rows()
			p.group++
			p.eof = false
		}
		n, err := p.rows.ReadRows(p.buf)
		p.i, p.n = 0, n
		switch {
		case err == io.EOF:
			p.eof = true
		case err != nil:
			return fmt.Errorf("parquet: read row group %d: %w", p.group-1, err)
		case n == 0:
			if empty++; empty > 100 {
				return fmt.Errorf("parquet: read row group %d: no progress", p.group-1)
			}
		}
	}
	return nil
}

// LoadParquet streams a Parquet export into the store as LoadCSV does a
// CSV export: in pipelined chunks, each customer's write atomic, a bad row
// rejected whole and reported (its Line is its row number, see
// ParquetReader.Next); a bad header, an unreadable file or an unreachable
// store stops the load.
func LoadParquet(ctx context.Context, s Store, r io.ReaderAt, size int64, o LoadOptions) (LoadSummary, error) {
	o.defaults(s.Now)
	rd, err := NewParquetReader(r, size, o.Now)
	if err != nil {
		return LoadSummary{}, err
	}
	return loadRows(ctx, s, rd.Next, o)
}
