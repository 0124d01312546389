package netsim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// A socket belongs to the namespace it was created in, whatever thread uses it later: the probes
// create theirs inside the namespace and then use them like any other.

// Server is a TCP server in a namespace that answers every connection with its banner.
type Server struct {
	Banner string
	ln     net.Listener
	wg     sync.WaitGroup
}

// ServeTCP listens on addr inside n; each connection is answered with banner and a newline.
func ServeTCP(n ns.NetNS, addr netip.AddrPort, banner string) (*Server, error) {
	var ln net.Listener
	err := n.Do(func(ns.NetNS) (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netsim: listen on %s in %s: %w", addr, n.Path(), err)
	}
	s := &Server{Banner: banner, ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = fmt.Fprintln(c, banner)
			_ = c.Close()
		}
	}()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	_ = s.ln.Close()
	s.wg.Wait()
}

// DialTCP connects from inside n to dst (optionally from src) and returns the banner the server
// sent: a caller checks that it reached the server it meant, not only something that answered.
func DialTCP(n ns.NetNS, src netip.Addr, dst netip.AddrPort, timeout time.Duration) (string, error) {
	var conn net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		conn, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("tcp %s: %w", dst, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("tcp %s: read banner: %w", dst, err)
	}
	return strings.TrimSpace(line), nil
}

// Ping sends ICMP echo requests from inside n to dst until one is answered or timeout passes.
func Ping(n ns.NetNS, dst netip.Addr, timeout time.Duration) error {
	network, proto := "ip4:icmp", 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		typ, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var conn *icmp.PacketConn
	err := n.Do(func(ns.NetNS) (err error) {
		conn, err = icmp.ListenPacket(network, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("ping %s: %w", dst, err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	id := os.Getpid() & 0xffff
	buf := make([]byte, 1500)
	for seq := 1; ctx.Err() == nil; seq++ {
		msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("netsim")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return fmt.Errorf("ping %s: %w", dst, err)
		}
		wait := time.Now().Add(300 * time.Millisecond)
		if d, ok := ctx.Deadline(); ok && d.Before(wait) {
			wait = d
		}
		_ = conn.SetReadDeadline(wait)
		for {
			nb, peer, err := conn.ReadFrom(buf)
			if err != nil {
				break // next attempt
			}
			m, err := icmp.ParseMessage(proto, buf[:nb])
			if err != nil || m.Type != reply {
				continue
			}
			echo, ok := m.Body.(*icmp.Echo)
			if !ok || echo.Seq != seq || string(echo.Data) != "netsim" {
				continue
			}
			if a, ok := netip.AddrFromSlice(peer.(*net.IPAddr).IP); !ok || a.Unmap() != dst {
				continue
			}
			return nil
		}
	}
	return fmt.Errorf("ping %s: %w", dst, errors.New("no reply"))
}

// Forwarder relays TCP connections accepted inside a namespace to an address of the process's
// own namespace: how a node namespace reaches a server on the host's loopback (the sandbox's
// control plane) at the same address.
type Forwarder struct {
	ln net.Listener
	wg sync.WaitGroup
}

// ForwardTCP listens on listen inside n and relays every connection to target, dialled from the
// caller's namespace.
func ForwardTCP(n ns.NetNS, listen netip.AddrPort, target string) (*Forwarder, error) {
	var ln net.Listener
	err := n.Do(func(ns.NetNS) (err error) {
		ln, err = net.Listen("tcp", listen.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netsim: forward %s in %s: %w", listen, n.Path(), err)
	}
	f := &Forwarder{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(in, target)
		}
	}()
	return f, nil
}

func relay(in net.Conn, target string) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	<-done
}

// Close stops accepting; relayed connections end with their peers.
func (f *Forwarder) Close() {
	_ = f.ln.Close()
	f.wg.Wait()
}
