// Package train is the offline half of the nbp propensity model: it fits one
// L2-regularised logistic regression per product on standardized features
// and exports the result as a self-contained ONNX model that the online
// service evaluates with ONNX Runtime.
//
// # Workflow
//
//  1. NewStandardizer computes, for every feature column, the value used to
//     impute missing (NaN) inputs and the mean/scale of the transformed
//     column. Which columns are log-transformed is the caller's choice.
//  2. The caller builds an Export with those statistics, uses
//     Export.Transform to turn raw rows into standardized rows z, and calls
//     FitLogistic once per product to obtain that product's weight column and
//     bias.
//  3. Export.MarshalONNX serializes the model; AUC helps to evaluate it.
//
// # Graph contract
//
// The exported model (IR version 8, default-domain opset 17) has one input
// and two outputs:
//
//	features       float32 [N, F]    raw feature values, NaN = missing
//	propensity     float32 [N, P]    sigmoid(z·W + b)
//	contributions  float32 [N, F, P] z[n,f] * W[f,p], the per-feature terms of the logit
//
// N is the symbolic dimension "N"; F and P are fixed. For each feature f the
// graph computes
//
//	x0 = isnan(x) ? ImputeValue[f] : x
//	t  = LogMask[f] ? log(max(x0, 0) + 1) : x0
//	z  = (t - Mean[f]) * Scale[f]
//
// which Export.Transform mirrors in Go, operation by operation in float32.
// A propensity is therefore sigmoid(Bias[p] + Σ_f contributions[n,f,p]).
//
// # Metadata
//
// The model carries these metadata_props (ModelProto field 14), which a
// loader can read with ONNX Runtime's custom metadata map. The loader should
// not import this package; the keys are part of the file format:
//
//	nbp.feature_names  JSON array of strings: the F input columns, in order
//	nbp.product_ids    JSON array of strings: the P output columns, in order
//	nbp.model_version  Export.Version, e.g. "propensity-2026.11.27-1"
//	nbp.trained_at     Export.TrainedAt in RFC 3339 format, UTC
//
// Export.Meta adds further entries (for example "nbp.catalog_version"); it
// cannot override the four keys above. ModelProto.model_version is
// TrainedAt.Unix(), the producer name is "nbp-train" and the graph name is
// "nbp_propensity".
//
// The protobuf encoding is written by hand with
// google.golang.org/protobuf/encoding/protowire, using the field numbers of
// the public onnx.proto schema; no generated code is involved.
package train
