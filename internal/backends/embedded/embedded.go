// Package embedded builds the backends `imago serve` runs on when
// IMAGO_TABLE is unset, all under IMAGO_DATA_DIR: blobs in files (fsstore),
// metadata in bbolt (boltstore), a local master key instead of KMS
// (localkeys), and the local staging area of presigned uploads
// (localstaging), with the cache package backends chooses. Only `imago
// serve` (internal/app/local) imports it: the Lambda functions link none
// of it. It is the sibling of awsbackends, and shares nothing with it but
// what package backends holds.
package embedded

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/boltstore"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/fsstore"
	"github.com/imagodocs/imago/internal/localkeys"
	"github.com/imagodocs/imago/internal/localstaging"
)

// Open builds the embedded backends in cfg.DataDir, and the cache cfg
// selects. The staging area's presigned URLs point at stagingURL, where
// `imago serve` listens ("" when nothing receives them: presigned uploads
// are then unavailable); it is returned too, for the server to receive
// its PUTs (localfront.NewReceiver). The staging folder is put back in
// order after a killed run (localstaging.Area.Recover: half-received PUTs
// removed, interrupted assemblies finished): the metadata store's lock,
// held from here on, says no other process receives PUTs into this folder.
// What is staged in full stays for the server's reconciliation
// (docstore.Service.ReconcileLoop), which ingests or removes it.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, stagingURL string) (*backends.Set, *localstaging.Area, error) {
	set, staging, err := open(cfg, stagingURL)
	if err == nil {
		err = recoverStaging(staging, log)
	}
	if err == nil {
		err = backends.OpenCache(ctx, cfg, set, log)
	}
	if err != nil {
		set.Close()
		return nil, nil, err
	}
	return set, staging, nil
}

func open(cfg config.Config, stagingURL string) (*backends.Set, *localstaging.Area, error) {
	set := &backends.Set{Kind: "embedded"}
	blobs, err := fsstore.New(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return set, nil, err
	}
	meta, err := boltstore.Open(filepath.Join(cfg.DataDir, "meta.db"))
	if err != nil {
		return set, nil, err
	}
	set.OnClose(meta.Close)
	keys, err := localkeys.Open(filepath.Join(cfg.DataDir, "master.key"))
	if err != nil {
		return set, nil, err
	}
	stagingKey, err := localkeys.KeyFile(filepath.Join(cfg.DataDir, "staging.key"))
	if err != nil {
		return set, nil, err
	}
	staging, err := localstaging.New(filepath.Join(cfg.DataDir, "staging"), cfg.StagingPrefix, stagingKey, stagingURL)
	if err != nil {
		return set, nil, err
	}
	set.Blobs, set.Meta, set.Links, set.Audit, set.Keys, set.Staging = blobs, meta, meta, meta, keys, staging
	return set, staging, nil
}

// recoverStaging puts the staging folder back in order after a killed run.
func recoverStaging(staging *localstaging.Area, log *slog.Logger) error {
	rep, err := staging.Recover()
	if err != nil {
		return err
	}
	if rep != (localstaging.RecoverReport{}) && log != nil {
		log.Warn("put the staging folder back in order after a previous run",
			"partial_files_removed", rep.Removed, "assemblies_finished", rep.Assembled, "assemblies_abandoned", rep.Abandoned)
	}
	return nil
}
