package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// Wire protocol facts used here (MongoDB's OP_MSG specification).
const (
	headerLen      = 16
	maxMessageLen  = 48 << 20 // MongoDB's maxMessageSizeBytes
	opMsg          = 2013
	flagMoreToCome = 1 << 1
)

// frontDoor accepts client connections and relays each one to its own connection to FerretDB.
// With serialize set, a request and its reply cross while one lock is held, so FerretDB never
// handles two commands at once.
type frontDoor struct {
	backend   string
	serialize bool
	logger    *slog.Logger

	lock sync.Mutex // held for one request/reply exchange

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
}

func (f *frontDoor) serve(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				f.logger.Error("accept", "err", err)
			}
			return
		}
		go f.relay(c)
	}
}

func (f *frontDoor) track(c net.Conn, add bool) {
	f.connsMu.Lock()
	defer f.connsMu.Unlock()
	if f.conns == nil {
		f.conns = map[net.Conn]struct{}{}
	}
	if add {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *frontDoor) closeAll() {
	f.connsMu.Lock()
	defer f.connsMu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

func (f *frontDoor) relay(client net.Conn) {
	defer client.Close()
	backend, err := net.Dial("unix", f.backend)
	if err != nil {
		f.logger.Error("dialing FerretDB", "err", err)
		return
	}
	defer backend.Close()
	f.track(client, true)
	defer f.track(client, false)

	for {
		req, err := readMessage(client)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				f.logger.Debug("reading request", "err", err)
			}
			return
		}
		if err := f.exchange(req, backend, client); err != nil {
			f.logger.Debug("relaying", "err", err)
			return
		}
	}
}

// exchange sends one request to FerretDB and copies its replies back to the client.
func (f *frontDoor) exchange(req []byte, backend, client net.Conn) error {
	if f.serialize {
		f.lock.Lock()
		defer f.lock.Unlock()
	}
	if _, err := backend.Write(req); err != nil {
		return err
	}
	if moreToCome(req) { // a fire-and-forget request gets no reply
		return nil
	}
	for {
		reply, err := readMessage(backend)
		if err != nil {
			return err
		}
		if _, err := client.Write(reply); err != nil {
			return err
		}
		if !moreToCome(reply) { // a reply with moreToCome announces another one
			return nil
		}
	}
}

// readMessage reads one whole wire message, header included.
func readMessage(r io.Reader) ([]byte, error) {
	var header [headerLen]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.LittleEndian.Uint32(header[:4])))
	if n < headerLen || n > maxMessageLen {
		return nil, fmt.Errorf("wire message length %d out of range", n)
	}
	msg := make([]byte, n)
	copy(msg, header[:])
	if _, err := io.ReadFull(r, msg[headerLen:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// moreToCome reports whether msg is an OP_MSG with the moreToCome flag: a request so flagged
// gets no reply, and a reply so flagged is followed by another.
func moreToCome(msg []byte) bool {
	if len(msg) < headerLen+4 || binary.LittleEndian.Uint32(msg[12:16]) != opMsg {
		return false
	}
	return binary.LittleEndian.Uint32(msg[16:20])&flagMoreToCome != 0
}
