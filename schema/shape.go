package schema

import (
	"encoding/binary"
	"fmt"
)

// checkShape walks the msgpack value at the start of b without decoding
// it and refuses what would make the decoder allocate on a header's word:
// a map or array header over MaxEntries, nesting over MaxDepth, or any
// header (string, binary, ext, map, array) claiming more than the bytes
// that remain. It allocates nothing but a small stack. Bytes after the
// first value are left to the decoder.
func checkShape(b []byte) error {
	var stack [MaxDepth + 1]int // items still to read, per open container
	depth := 0
	stack[0] = 1
	pos := 0
	need := func(n uint64) error {
		if n > uint64(len(b)-pos) {
			return fmt.Errorf("%w: msgpack value at byte %d claims %d bytes, %d remain", ErrMalformed, pos, n, len(b)-pos)
		}
		return nil
	}
	// length reads a big-endian length of size bytes.
	length := func(size int) (uint64, error) {
		if err := need(uint64(size)); err != nil {
			return 0, err
		}
		var n uint64
		switch size {
		case 1:
			n = uint64(b[pos])
		case 2:
			n = uint64(binary.BigEndian.Uint16(b[pos:]))
		case 4:
			n = uint64(binary.BigEndian.Uint32(b[pos:]))
		}
		pos += size
		return n, nil
	}
	for {
		for stack[depth] == 0 {
			if depth == 0 {
				return nil
			}
			depth--
		}
		stack[depth]--
		if err := need(1); err != nil {
			return err
		}
		c := b[pos]
		pos++
		var skip uint64    // bytes of payload to skip
		var entries uint64 // items of a container
		container := false
		var err error
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			entries, container = uint64(c&0x0f), true
			c = 0xde // counted as a map below
		case c >= 0x90 && c <= 0x9f:
			entries, container = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4, c == 0xd9: // bin8, str8
			skip, err = length(1)
		case c == 0xc5, c == 0xda:
			skip, err = length(2)
		case c == 0xc6, c == 0xdb:
			skip, err = length(4)
		case c == 0xc7, c == 0xc8, c == 0xc9: // ext8/16/32: length, type, data
			skip, err = length(1 << (c - 0xc7))
			skip++
		case c == 0xca:
			skip = 4
		case c == 0xcb:
			skip = 8
		case c >= 0xcc && c <= 0xcf: // uint8..64
			skip = 1 << (c - 0xcc)
		case c >= 0xd0 && c <= 0xd3: // int8..64
			skip = 1 << (c - 0xd0)
		case c >= 0xd4 && c <= 0xd8: // fixext1..16: type, data
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc, c == 0xde: // array16, map16
			entries, err = length(2)
			container = true
		case c == 0xdd, c == 0xdf: // array32, map32
			entries, err = length(4)
			container = true
		default: // 0xc1: never used
			return fmt.Errorf("%w: msgpack code %#x at byte %d", ErrMalformed, c, pos-1)
		}
		if err != nil {
			return err
		}
		if container {
			if entries > MaxEntries {
				return badField("msgpack", "a map or array header claims %d entries, over the bound %d", entries, MaxEntries)
			}
			if c == 0xde || c == 0xdf { // a map's entries are key and value
				entries *= 2
			}
			if entries == 0 {
				continue
			}
			if depth == MaxDepth {
				return badField("msgpack", "nesting over %d levels", MaxDepth)
			}
			if err := need(entries); err != nil { // every entry takes a byte at least
				return err
			}
			depth++
			stack[depth] = int(entries)
			continue
		}
		if err := need(skip); err != nil {
			return err
		}
		pos += int(skip)
	}
}
