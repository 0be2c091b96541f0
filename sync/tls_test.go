//go:build !js

package edgesync_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// selfSigned returns a self-signed ECDSA certificate for 127.0.0.1.
func selfSigned(t *testing.T) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "athena-edge test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// TestSyncOverTLS serves the sync endpoint over TLS with a self-signed
// certificate made here: a client that trusts it syncs over wss://, one
// that does not is refused with an x509 error before any frame is sent.
func TestSyncOverTLS(t *testing.T) {
	t.Parallel()
	cert, leaf := selfSigned(t)
	db := newDB("server")
	srv := edgesync.NewServer(edgesync.ServerConfig{DB: db, Rate: -1})
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused client's handshake error
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ts.StartTLS()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		ts.CloseClientConnections()
		ts.Close()
	})
	require.True(t, strings.HasPrefix(ts.URL, "https://127.0.0.1:"))
	url := "wss" + strings.TrimPrefix(ts.URL, "https") + edgesync.PathSync

	h := &harness{t: t, db: db}
	mk := func(device string, hc *http.Client) *edge {
		e := &edge{t: t, db: newDB(device), token: h.token("proj", device)}
		p, err := e.db.CreateProject(context.Background(), core.Project{Name: "proj", Path: "/proj", EmbeddingModel: "test", EmbeddingDim: testDim})
		require.NoError(t, err)
		e.project = p.ID
		e.client = edgesync.NewClient(edgesync.ClientConfig{DB: e.db, ServerURL: url, Token: e.token, HTTPClient: hc, MaxRetries: -1})
		return e
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(trusting.CloseIdleConnections)

	a := mk("tls-a", trusting)
	id := a.remember("over wss")
	st := a.sync()
	require.Equal(t, 2, st.Pushed) // the project and the memory
	_, err := db.Memory(context.Background(), id)
	require.NoError(t, err)

	b := mk("tls-b", &http.Client{Transport: &http.Transport{}}) // system roots only
	b.remember("never sent")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = b.client.Sync(ctx)
	require.Error(t, err)
	var unknown x509.UnknownAuthorityError
	require.True(t, errors.As(err, &unknown), "want an x509 unknown-authority error, got %v", err)
	require.False(t, edgesync.Retryable(err), "a certificate the client does not trust is not retried")
	require.Empty(t, deviceLog(t, db, "tls-b"))
	require.Equal(t, 0, srv.Conns())
}
