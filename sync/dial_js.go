//go:build js

package edgesync

import (
	"context"
	"fmt"

	"github.com/coder/websocket"
)

// dialWS opens the WebSocket from a browser, which cannot set headers on
// it: a ticket (from TicketFunc, or fetched with the token over HTTP)
// travels in the URL.
func (c *Client) dialWS(ctx context.Context) (*websocket.Conn, error) {
	var t string
	var err error
	switch {
	case c.cfg.TicketFunc != nil:
		t, err = c.cfg.TicketFunc(ctx)
	case c.cfg.Token != "":
		t, err = fetchTicket(ctx, c.httpClient(), c.url, c.cfg.Token)
	}
	if err != nil {
		return nil, fmt.Errorf("edgesync: ticket: %w", err)
	}
	u := c.url
	if t != "" {
		if u, err = withTicket(u, t); err != nil {
			return nil, err
		}
	}
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("edgesync: dial: %w", err)
	}
	return ws, nil
}
