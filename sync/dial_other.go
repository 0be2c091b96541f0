//go:build !js

package edgesync

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coder/websocket"
)

// dialWS opens the WebSocket: with the token in an Authorization header,
// or with a ticket in the URL when the client has only a TicketFunc.
func (c *Client) dialWS(ctx context.Context) (*websocket.Conn, error) {
	u := c.url
	h := http.Header{}
	switch {
	case c.cfg.Token != "":
		h.Set("Authorization", "Bearer "+c.cfg.Token)
	case c.cfg.TicketFunc != nil:
		t, err := c.cfg.TicketFunc(ctx)
		if err != nil {
			return nil, fmt.Errorf("edgesync: ticket: %w", err)
		}
		if u, err = withTicket(u, t); err != nil {
			return nil, err
		}
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.cfg.HTTPClient, HTTPHeader: h})
	if err != nil {
		if resp != nil {
			if serr := statusErr(resp.StatusCode); serr != nil {
				return nil, fmt.Errorf("edgesync: dial: %w", serr)
			}
		}
		return nil, fmt.Errorf("edgesync: dial: %w", err)
	}
	return ws, nil
}
