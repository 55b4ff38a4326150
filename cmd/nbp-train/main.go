// Command nbp-train fits the propensity model on the demo bank's simulated
// outcomes and writes it as ONNX, with a model card.
//
// It generates the bank (deterministic for a seed), fits one L2-regularised
// logistic regression per product with gonum on the customers who may have
// the product, holds out a fifth of the customers, and reports per-product
// AUC and the precision@3 of the model, of the rules scorer and of the
// hidden ground truth.
//
// It writes a version folder into the model directory (the model and its
// card) and, with -use or when the directory points to no version yet,
// points the directory to it.
//
//	nbp-train -n 60000 -dir models
//	nbp-train -rules-trees -dir models   # the catalog's rules as per-product tree ensembles
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/model/train"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nbp-train:", err)
		os.Exit(1)
	}
}

type config struct {
	n         int
	seed      uint64
	asOf      time.Time
	catalog   string
	dir       string
	use       bool
	trees     bool
	version   string
	ortLib    string
	l2        float64
	trainedAt time.Time
}

func parseConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("nbp-train", flag.ContinueOnError)
	var c config
	var asOf, trainedAt string
	fs.IntVar(&c.n, "n", 60000, "customers to generate (a fifth is held out)")
	fs.Uint64Var(&c.seed, "seed", 42, "demo bank seed")
	fs.StringVar(&asOf, "as-of", "2026-11-27", "the demo bank's export date (YYYY-MM-DD)")
	fs.StringVar(&c.catalog, "catalog", "", "catalog file (default: the embedded demo catalog)")
	fs.StringVar(&c.dir, "dir", "models", "model directory: the version is written to a folder of its own")
	fs.BoolVar(&c.use, "use", false, "point the directory to the new version (done anyway when it points to none)")
	fs.BoolVar(&c.trees, "rules-trees", false, "write the catalog's rules as per-product tree ensembles instead (to exercise a bank's export form), version rules-trees-<catalog version>")
	fs.StringVar(&c.version, "version", "", "model version (default propensity-<as-of>-s<seed>)")
	fs.StringVar(&trainedAt, "trained-at", "", "training time to record, RFC 3339 (default now)")
	fs.Float64Var(&c.l2, "l2", 1e-3, "L2 penalty on the mean log-loss")
	fs.StringVar(&c.ortLib, "onnxruntime", getenv("ONNXRUNTIME_LIB"), "ONNX Runtime library, to check the written model (env ONNXRUNTIME_LIB)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	if c.n < 1000 {
		errs = append(errs, fmt.Errorf("-n %d: want at least 1000", c.n))
	}
	t, err := time.Parse(time.DateOnly, asOf)
	if err != nil {
		errs = append(errs, fmt.Errorf("-as-of: %w", err))
	}
	c.asOf = t
	c.trainedAt = time.Now().UTC().Truncate(time.Second)
	if trainedAt != "" {
		if c.trainedAt, err = time.Parse(time.RFC3339, trainedAt); err != nil {
			errs = append(errs, fmt.Errorf("-trained-at: %w", err))
		}
	}
	if c.version == "" {
		c.version = fmt.Sprintf("propensity-%s-s%d", asOf, c.seed)
	}
	if !model.ValidVersion(c.version) {
		errs = append(errs, fmt.Errorf("-version %q: want letters, digits, '.', '_' or '-'", c.version))
	}
	if c.ortLib != "" {
		if c.ortLib, err = filepath.Abs(c.ortLib); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	c, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	cat, err := loadCatalog(c.catalog)
	if err != nil {
		return err
	}
	if c.trees {
		return writeRulesTrees(c, cat, stdout)
	}
	fmt.Fprintf(stdout, "generating %d customers (seed %d)\n", c.n, c.seed)
	ds, err := buildDataset(ctx, cat, c.seed, c.asOf, c.n)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fitting %d products on %d customers (%d held out)\n", len(cat.Products), ds.train, c.n-ds.train)
	exp, err := fit(ctx, ds, cat, c)
	if err != nil {
		return err
	}
	onnx, err := exp.MarshalONNX()
	if err != nil {
		return err
	}
	if c.ortLib != "" {
		// Prove the file loads in ONNX Runtime against the schema and catalog.
		stopRT, err := model.StartRuntime(c.ortLib)
		if err != nil {
			return err
		}
		m, err := model.NewONNX(onnx, ds.schema, cat.ProductIDs(), model.ONNXOptions{Workers: 1})
		if err != nil {
			_ = stopRT()
			return fmt.Errorf("the written model does not load: %w", err)
		}
		m.Close()
		_ = stopRT()
	}
	card, err := evaluate(ctx, ds, cat, exp)
	if err != nil {
		return err
	}
	folder := model.Dir(c.dir).Path(exp.Version)
	out := filepath.Join(folder, modelFile)
	if err := writeFile(out, onnx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes), version %s\n", out, len(onnx), exp.Version)
	if err := writeFile(filepath.Join(folder, model.CardFile), []byte(card.markdown(c, exp))); err != nil {
		return err
	}
	if err := point(c, exp.Version, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "precision@3: model %.3f, rules %.3f, truth %.3f; mean AUC %.3f\n",
		card.precModel, card.precRules, card.precTruth, card.meanAUC)
	return nil
}

func loadCatalog(path string) (*catalog.Catalog, error) {
	if path == "" {
		return catalog.Default()
	}
	return catalog.Load(path)
}

func writeFile(path string, b []byte) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// modelFile is the model's file name in its version folder.
const modelFile = "propensity.onnx"

// point points the model directory to the new version with -use, or when
// it points to none.
func point(c config, version string, stdout io.Writer) error {
	d := model.Dir(c.dir)
	if _, err := d.Current(); err == nil && !c.use {
		fmt.Fprintf(stdout, "%s is in the directory; put it in force with: curl -X PUT .../v1/admin/model -d '{\"version\":\"%s\"}' (or write it to %s)\n",
			version, version, filepath.Join(c.dir, model.PointerFile))
		return nil
	}
	if err := d.SetCurrent(version); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s now points to %s\n", filepath.Join(c.dir, model.PointerFile), version)
	return nil
}

// writeRulesTrees writes the catalog's rules as a version of per-product
// tree ensembles, the form onnxmltools exports an XGBClassifier in.
func writeRulesTrees(c config, cat *catalog.Catalog, stdout io.Writer) error {
	v := "rules-trees-" + cat.Version
	folder, err := train.WriteRulesTrees(c.dir, cat, train.TreeVersion{Version: v, Columns: features.Names(), TrainedAt: c.trainedAt})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", folder)
	return point(c, v, stdout)
}
