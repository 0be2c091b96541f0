// Package tests holds black-box, cross-package and end-to-end tests of athena-edge.
package tests
