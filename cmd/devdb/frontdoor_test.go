package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func wireMessage(opCode uint32, flags uint32, payload []byte) []byte {
	msg := make([]byte, headerLen+4+len(payload))
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint32(msg[12:], opCode)
	binary.LittleEndian.PutUint32(msg[16:], flags)
	copy(msg[20:], payload)
	return msg
}

func TestReadMessageReadsExactlyOneMessage(t *testing.T) {
	first := wireMessage(opMsg, 0, []byte("hello"))
	second := wireMessage(opMsg, flagMoreToCome, []byte("world!"))
	r := bytes.NewReader(append(append([]byte{}, first...), second...))
	for i, want := range [][]byte{first, second} {
		got, err := readMessage(r)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d = %x, want %x", i, got, want)
		}
	}
	if _, err := readMessage(r); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last message: err = %v, want EOF", err)
	}
}

func TestReadMessageRefusesBadLengths(t *testing.T) {
	for name, length := range map[string]int32{"shorter than a header": 15, "negative": -1, "over 48 MiB": maxMessageLen + 1} {
		t.Run(name, func(t *testing.T) {
			header := make([]byte, headerLen)
			binary.LittleEndian.PutUint32(header, uint32(length))
			if _, err := readMessage(bytes.NewReader(header)); err == nil {
				t.Fatalf("length %d accepted", length)
			}
		})
	}
}

func TestMoreToCome(t *testing.T) {
	cases := map[string]struct {
		msg  []byte
		want bool
	}{
		"OP_MSG without flags":       {wireMessage(opMsg, 0, nil), false},
		"OP_MSG with moreToCome":     {wireMessage(opMsg, flagMoreToCome, nil), true},
		"OP_MSG with exhaustAllowed": {wireMessage(opMsg, 1<<16, nil), false},
		"legacy OP_QUERY, same bits": {wireMessage(2004, flagMoreToCome, nil), false},
		"truncated OP_MSG":           {wireMessage(opMsg, flagMoreToCome, nil)[:headerLen], false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := moreToCome(tc.msg); got != tc.want {
				t.Fatalf("moreToCome = %t, want %t", got, tc.want)
			}
		})
	}
}

// FuzzReadMessage checks that no input makes readMessage panic or return a message whose
// length disagrees with its header.
func FuzzReadMessage(f *testing.F) {
	f.Add(wireMessage(opMsg, 0, []byte("x")))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f})
	f.Add(make([]byte, headerLen))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := readMessage(bytes.NewReader(data))
		if err != nil {
			return
		}
		if int(binary.LittleEndian.Uint32(msg)) != len(msg) || !bytes.HasPrefix(data, msg) {
			t.Fatalf("readMessage returned %d bytes that are not the message framed by the input", len(msg))
		}
		_ = moreToCome(msg)
	})
}
