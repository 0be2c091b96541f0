package edgesync

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// fetchTicket exchanges a bearer token for a single-use ticket at the
// server's PathTicket (used on js, where a WebSocket cannot carry headers).
func fetchTicket(ctx context.Context, hc *http.Client, wsURL, token string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", fmt.Errorf("%w: server url: %v", ErrProtocol, err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.Path = strings.TrimSuffix(u.Path, PathSync) + PathTicket
	u.RawQuery = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := statusErr(resp.StatusCode); err != nil {
		return "", err
	}
	var out struct {
		Ticket string `json:"ticket"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&out); err != nil || out.Ticket == "" {
		return "", fmt.Errorf("%w: bad ticket response", ErrProtocol)
	}
	return out.Ticket, nil
}

// statusErr maps a refused handshake's HTTP status to a sentinel.
func statusErr(code int) error {
	switch {
	case code == 0, code == http.StatusSwitchingProtocols, code >= 200 && code < 300:
		return nil
	case code == http.StatusUnauthorized:
		return ErrUnauthorized
	case code == http.StatusForbidden:
		return ErrForbidden
	case code == http.StatusTooManyRequests:
		return ErrRateLimited
	case code == http.StatusServiceUnavailable, code >= 500:
		return fmt.Errorf("%w: HTTP %d", ErrUnavailable, code)
	}
	return fmt.Errorf("%w: HTTP %d", ErrProtocol, code)
}

func withTicket(wsURL, ticket string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", fmt.Errorf("%w: server url: %v", ErrProtocol, err)
	}
	q := u.Query()
	q.Set("ticket", ticket)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
