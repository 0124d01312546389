package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// dialInNS connects to addr from inside n. The socket is created on a thread inside n and belongs
// to n from then on, whichever thread later reads or writes it; so the host never needs a route
// to n's addresses.
func dialInNS(ctx context.Context, n ns.NetNS, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", addr, n.Path(), err)
	}
	return c, nil
}

// nsHTTPClient is an HTTP client whose connections start inside n. It never uses a proxy from
// the environment: the addresses it reaches exist only inside n.
func nsHTTPClient(n ns.NetNS, base *http.Transport) *http.Client {
	t := base
	if t == nil {
		t = &http.Transport{}
	}
	t.Proxy = nil
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialInNS(ctx, n, network, addr)
	}
	return &http.Client{Transport: t, Timeout: 5 * time.Second}
}

// hostForward relays TCP connections accepted on a loopback port of the host's namespace to a
// target dialled inside the control plane's namespace: the host's kubectl and helm reach the
// apiserver without any route or address for the sandbox's subnets on the host.
type hostForward struct {
	ln     net.Listener
	n      ns.NetNS
	target netip.AddrPort

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// forwardFromHost listens on listen in the caller's namespace. The caller must run on a thread in
// the host's namespace (any goroutine that has not entered another one).
func forwardFromHost(listen netip.AddrPort, n ns.NetNS, target netip.AddrPort) (*hostForward, error) {
	ln, err := net.Listen("tcp", listen.String())
	if err != nil {
		return nil, fmt.Errorf("host forward: listen on %s: %w", listen, err)
	}
	f := &hostForward{ln: ln, n: n, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Addr returns the address the forward listens on.
func (f *hostForward) Addr() netip.AddrPort {
	return f.ln.Addr().(*net.TCPAddr).AddrPort()
}

func (f *hostForward) serve() {
	defer f.wg.Done()
	for {
		in, err := f.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				slog.Warn("host forward stopped accepting", "listen", f.ln.Addr().String(), "err", err)
			}
			return
		}
		if !f.track(in) {
			_ = in.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(in)
			f.relay(in)
		}()
	}
}

func (f *hostForward) relay(in net.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := dialInNS(ctx, f.n, "tcp", f.target.String())
	cancel()
	if err != nil {
		// The client sees its connection closed; the apiserver not listening yet is routine while
		// the control plane starts, so this is not worth more than a debug line.
		slog.Debug("host forward: dial failed", "target", f.target.String(), "err", err)
		return
	}
	if !f.track(out) {
		_ = out.Close()
		return
	}
	defer f.untrack(out)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Pass the half-close on so that the peer sees the end of the stream.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// track registers c so that Close can cut it; false once the forward is closed.
func (f *hostForward) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *hostForward) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	_ = c.Close()
}

// Close stops listening and cuts every relayed connection (watches would otherwise keep them,
// and their goroutines, open for as long as the client lives).
func (f *hostForward) Close() {
	f.mu.Lock()
	f.closed = true
	_ = f.ln.Close()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
