package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
)

// An ESXi host of its own for NFC uploads (--nfc-host-tls). On vCenter a lease's
// device URL names the ESXi host that takes the bytes, and that host has its own
// certificate, which vCenter vouches for in HttpNfcLeaseDeviceUrl.sslThumbprint (the
// certificate's SHA-1). The simulator serves every lease on its own origin, so a
// client that used vCenter's trust for the host would never be caught. With the flag
// the harness serves lease uploads on a second TLS listener with a certificate of its
// own, points the device URLs at it with its thumbprint, and refuses them on vCenter's
// origin.

// nfcHostKey marks a request that came in on the NFC host's listener.
type nfcHostKey struct{}

type nfcHost struct {
	url        string // https://127.0.0.1:port
	thumbprint string // SHA-1 of its certificate, colon hex
	server     *http.Server
}

// startNFCHost opens the host's listener and makes the leases use it. advertise is
// the sslThumbprint leases give: "" for the certificate's own, "none" for none.
func (in *injector) startNFCHost(advertise string) (*nfcHost, error) {
	cert, err := newSelfSignedCert()
	if err != nil {
		return nil, fmt.Errorf("generating the NFC host certificate: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("NFC host listener: %v", err)
	}
	h := &nfcHost{url: "https://" + ln.Addr().String(), thumbprint: colonHex(sha1Sum(cert.der))}
	h.server = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isUpload(r) {
				in.serveUpload(w, r) // fault rules (cutUpload) and stats as on vCenter's origin
				return
			}
			http.NotFound(w, r)
		}),
		BaseContext: func(net.Listener) context.Context { return context.WithValue(context.Background(), nfcHostKey{}, true) },
	}
	go func() { _ = h.server.Serve(tls.NewListener(ln, cert.tlsConfig())) }()
	in.nfc.mu.Lock()
	defer in.nfc.mu.Unlock()
	switch advertise {
	case "":
		in.nfc.hostThumbprint = h.thumbprint
	case "none":
		in.nfc.hostThumbprint = ""
	default:
		in.nfc.hostThumbprint = advertise
	}
	in.nfc.hostURL = h.url
	return h, nil
}

func onNFCHost(r *http.Request) bool {
	return r.Context().Value(nfcHostKey{}) != nil
}
