package gossip

import "fmt"

// InstallKey adds key to this node's keyring for decryption only; it is step 1 of a rotation.
//
// Keys are per node, so a rotation runs each step on every member before the next step:
//
//  1. InstallKey(new) on all members: everyone can now read messages sealed with either key.
//  2. UseKey(new) on all members: each starts sealing with the new key; members not yet
//     switched still read them thanks to step 1.
//  3. RemoveKey(old) on all members, once every member uses the new key.
//
// Skipping ahead (UseKey before every member has the key) cuts the members without it off
// until they get it. Members that restart during a rotation must be configured with both keys
// (the one in use first). Turning encryption on or off on a running cluster is not supported.
func (g *Gossip) InstallKey(key []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("gossip: install key: %w", err)
	}
	return g.withKeyring("install key", func() error { return g.keyring.AddKey(key) })
}

// UseKey makes an installed key the one this node encrypts with (rotation step 2, see
// InstallKey).
func (g *Gossip) UseKey(key []byte) error {
	return g.withKeyring("use key", func() error { return g.keyring.UseKey(key) })
}

// RemoveKey drops a key from this node's keyring (rotation step 3, see InstallKey). The key in
// use cannot be removed.
func (g *Gossip) RemoveKey(key []byte) error {
	return g.withKeyring("remove key", func() error { return g.keyring.RemoveKey(key) })
}

func (g *Gossip) withKeyring(what string, f func() error) error {
	if g.keyring == nil {
		return fmt.Errorf("gossip: %s: %w", what, ErrPlaintext)
	}
	if err := f(); err != nil {
		return fmt.Errorf("gossip: %s: %w", what, err)
	}
	return nil
}
