#include "graph/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "graph/shape_inference.h"
#include "graph/tensor_proto.h"

namespace hearth {
namespace fs = std::filesystem;

namespace {

Result<ValueInfo> convert_value_info(const onnx::ValueInfoProto& vi, const char* what) {
  ValueInfo out;
  out.name = vi.name();
  // No type, or a TypeProto with nothing set (exporters that inline If branches
  // write them): the type comes from the producing node (shape inference) or
  // from the value at run time.
  if (!vi.has_type() || vi.type().value_case() == onnx::TypeProto::VALUE_NOT_SET) {
    out.dtype = DataType::kUndefined;
    return out;
  }
  if (!vi.type().has_tensor_type()) {
    return unimplemented(what, " '", vi.name(), "' is not a tensor (sequence, map and optional values are not supported)");
  }
  const auto& tt = vi.type().tensor_type();
  out.dtype = static_cast<DataType>(tt.elem_type());
  if (tt.has_shape()) {
    out.has_shape = true;
    for (const auto& d : tt.shape().dim()) {
      if (d.has_dim_value()) {
        if (d.dim_value() < 0) return invalid_argument(what, " '", vi.name(), "' has negative dimension ", d.dim_value());
        out.dims.push_back(d.dim_value());
        out.dim_names.emplace_back();
      } else {
        out.dims.push_back(-1);
        out.dim_names.push_back(d.has_dim_param() ? d.dim_param() : "");
      }
    }
  }
  return out;
}

struct ImportContext {
  ExternalData external;
  const std::map<std::string, int64_t>* opsets = nullptr;
  int depth = 0;
};

// `owned`: the same graph, mutable, when its initializers' payloads may be moved
// out instead of copied (the top-level graph of a model parsed for import).
Result<Graph> convert_graph(const onnx::GraphProto& gp, const ImportContext& ctx, bool top_level,
                            onnx::GraphProto* owned = nullptr);

Result<Attribute> convert_attribute(const onnx::AttributeProto& ap, const ImportContext& ctx) {
  Attribute a;
  a.name = ap.name();
  if (!ap.ref_attr_name().empty()) {
    return unimplemented("attribute '", ap.name(), "' references a function attribute (model-local functions are not supported)");
  }
  using AP = onnx::AttributeProto;
  switch (ap.type()) {
    case AP::FLOAT: a.type = Attribute::Type::kFloat; a.f = ap.f(); break;
    case AP::INT: a.type = Attribute::Type::kInt; a.i = ap.i(); break;
    case AP::STRING: a.type = Attribute::Type::kString; a.s = ap.s(); break;
    case AP::TENSOR: {
      a.type = Attribute::Type::kTensor;
      HEARTH_ASSIGN_OR_RETURN(a.t, tensor_from_proto(ap.t(), ctx.external));
      break;
    }
    case AP::GRAPH: {
      if (ctx.depth > 16) return invalid_argument("subgraphs nested deeper than 16 levels");
      ImportContext sub = ctx;
      sub.depth++;
      HEARTH_ASSIGN_OR_RETURN(Graph g, convert_graph(ap.g(), sub, false));
      a.type = Attribute::Type::kGraph;
      a.g = std::make_shared<Graph>(std::move(g));
      break;
    }
    case AP::FLOATS: a.type = Attribute::Type::kFloats; a.floats.assign(ap.floats().begin(), ap.floats().end()); break;
    case AP::INTS: a.type = Attribute::Type::kInts; a.ints.assign(ap.ints().begin(), ap.ints().end()); break;
    case AP::STRINGS: a.type = Attribute::Type::kStrings; a.strings.assign(ap.strings().begin(), ap.strings().end()); break;
    case AP::TENSORS:
      a.type = Attribute::Type::kTensors;
      for (const auto& t : ap.tensors()) {
        HEARTH_ASSIGN_OR_RETURN(Tensor x, tensor_from_proto(t, ctx.external));
        a.tensors.push_back(std::move(x));
      }
      break;
    default:
      // Old files omit `type`; infer it from the populated field.
      if (ap.has_f()) { a.type = Attribute::Type::kFloat; a.f = ap.f(); }
      else if (ap.has_i()) { a.type = Attribute::Type::kInt; a.i = ap.i(); }
      else if (ap.has_s()) { a.type = Attribute::Type::kString; a.s = ap.s(); }
      else if (ap.ints_size()) { a.type = Attribute::Type::kInts; a.ints.assign(ap.ints().begin(), ap.ints().end()); }
      else if (ap.floats_size()) { a.type = Attribute::Type::kFloats; a.floats.assign(ap.floats().begin(), ap.floats().end()); }
      else a.type = Attribute::Type::kOther;
  }
  return a;
}

// Constant nodes become initializers so every later stage sees plain data.
Result<Tensor> constant_value(const Node& node) {
  for (const auto& [name, a] : node.attributes) {
    if (name == "value" && a.type == Attribute::Type::kTensor) return a.t;
    if (name == "value_float") return Tensor::scalar<float>(a.f);
    if (name == "value_int") return Tensor::scalar<int64_t>(a.i);
    if (name == "value_floats") return Tensor::from_vector<float>(a.floats, {static_cast<int64_t>(a.floats.size())});
    if (name == "value_ints") return Tensor::from_vector<int64_t>(a.ints, {static_cast<int64_t>(a.ints.size())});
    if (name == "sparse_value" || name == "value_string" || name == "value_strings") {
      return unimplemented(node.describe(), ": Constant attribute '", name, "' is not supported");
    }
  }
  return invalid_argument(node.describe(), ": Constant has no value attribute");
}

Result<Graph> convert_graph(const onnx::GraphProto& gp, const ImportContext& ctx, bool top_level,
                            onnx::GraphProto* owned) {
  Graph g;
  g.name = gp.name();
  for (int i = 0; i < gp.initializer_size(); ++i) {
    const onnx::TensorProto& tp = gp.initializer(i);
    if (tp.name().empty()) return invalid_argument("an initializer has no name");
    auto t = owned ? take_tensor_from_proto(owned->mutable_initializer(i), ctx.external)
                   : tensor_from_proto(tp, ctx.external);
    if (!t.ok()) return t.status().with_context("initializer '" + tp.name() + "'");
    if (!g.initializers.emplace(tp.name(), std::move(t).value()).second) {
      return invalid_argument("initializer '", tp.name(), "' is defined twice");
    }
  }
  if (gp.sparse_initializer_size() > 0) return unimplemented("sparse initializers are not supported");
  for (const auto& vi : gp.input()) {
    HEARTH_ASSIGN_OR_RETURN(ValueInfo v, convert_value_info(vi, "graph input"));
    if (g.initializers.count(v.name)) g.overridable_initializers.push_back(std::move(v));
    else g.inputs.push_back(std::move(v));
  }
  for (const auto& vi : gp.output()) {
    HEARTH_ASSIGN_OR_RETURN(ValueInfo v, convert_value_info(vi, "graph output"));
    g.outputs.push_back(std::move(v));
  }
  for (const auto& vi : gp.value_info()) {
    auto v = convert_value_info(vi, "value");
    if (v.ok()) g.value_info[v->name] = std::move(v).value();
  }
  size_t index = 0;
  for (const auto& np : gp.node()) {
    Node n;
    n.op_type = np.op_type();
    n.domain = normalize_domain(np.domain());
    n.name = np.name().empty() ? n.op_type + "_" + std::to_string(index) : np.name();
    ++index;
    if (Status st = check_node_schema(np, *ctx.opsets); !st.ok()) return st;
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& ap : np.attribute()) {
      auto a = convert_attribute(ap, ctx);
      if (!a.ok()) return a.status().with_context(n.describe());
      n.attributes[ap.name()] = std::move(a).value();
    }
    if (n.op_type == "Constant" && n.domain.empty()) {
      if (n.outputs.size() != 1) return invalid_argument(n.describe(), ": Constant must have one output");
      HEARTH_ASSIGN_OR_RETURN(Tensor t, constant_value(n));
      if (!g.initializers.emplace(n.outputs[0], std::move(t)).second) {
        return invalid_argument("value '", n.outputs[0], "' is defined twice");
      }
      continue;
    }
    g.nodes.push_back(std::move(n));
  }
  if (top_level) HEARTH_RETURN_IF_ERROR(topological_sort(g));
  return g;
}

Status check_opsets(const Model& m) {
  int64_t v = m.opset("");
  if (v <= 0) return invalid_argument("model imports no opset of the default ONNX domain");
  if (v > kMaxSupportedOpset) {
    return unimplemented("model uses opset ", v, " of the default domain; Hearth supports up to ", kMaxSupportedOpset);
  }
  return ok_status();
}

Result<Model> import_model(const void* data, size_t size, const ExternalData& external) {
  if (size > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return invalid_argument("model protobuf is ", size, " bytes; files over 2 GiB must keep weights in external data");
  }
  onnx::ModelProto mp;
  if (!mp.ParseFromArray(data, static_cast<int>(size))) {
    return invalid_argument("not a valid ONNX model: the protobuf could not be parsed (", size,
                            " bytes; truncated or corrupted?)");
  }
  if (!mp.has_graph()) return invalid_argument("ONNX model has no graph");
  Model m;
  m.ir_version = mp.ir_version();
  m.producer_name = mp.producer_name();
  m.producer_version = mp.producer_version();
  for (const auto& os : mp.opset_import()) m.opsets[normalize_domain(os.domain())] = os.version();
  if (mp.opset_import_size() == 0) m.opsets[""] = 1;  // ONNX: absent means opset 1
  HEARTH_RETURN_IF_ERROR(check_opsets(m));
  if (mp.functions_size() > 0) {
    // Model-local functions are only a problem if a node uses them; record their domains.
    for (const auto& f : mp.functions()) {
      for (const auto& n : mp.graph().node()) {
        if (n.op_type() == f.name() && n.domain() == f.domain()) {
          return unimplemented("node '", n.name(), "' calls model-local function ", f.domain(), ".", f.name(),
                               " (functions are not supported)");
        }
      }
    }
  }
  ImportContext ctx;
  ctx.external = external;
  ctx.opsets = &m.opsets;
  HEARTH_ASSIGN_OR_RETURN(m.graph, convert_graph(mp.graph(), ctx, true, mp.mutable_graph()));
  infer_value_info(mp.graph(), m.opsets, m.graph);
  return m;
}

}  // namespace

Result<Model> load_model_bytes(const void* data, size_t size, const std::string& base_dir) {
  return load_model_bytes(data, size, ExternalData{base_dir, nullptr});
}

Result<Model> load_model_bytes(const void* data, size_t size, const ExternalData& external) {
  // The file is untrusted: an allocation it sizes, or a library exception, fails the
  // import, never the process.
  try {
    return import_model(data, size, external);
  } catch (const SizeError& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return resource_exhausted("out of memory while importing the model");
  } catch (const std::exception& e) {
    return internal_error("unexpected exception while importing the model: ", e.what());
  }
}

Result<Model> load_model_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return not_found("model file '", path, "' does not exist or is not a file");
  std::string dir = fs::absolute(path).parent_path().string();
  // Read into anonymous memory that may use huge pages: a 100 MB model otherwise
  // costs ~25,000 page faults before parsing starts. (Not mmap of the file: a
  // file truncated while mapped would kill the process with SIGBUS.)
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return not_found("cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {  // what was opened, not what was checked
    ::close(fd);
    return not_found("model file '", path, "' is not a regular file");
  }
  const uintmax_t size = static_cast<uintmax_t>(st.st_size);
  if (size > static_cast<uintmax_t>(std::numeric_limits<int>::max())) {
    ::close(fd);
    return invalid_argument("'", path, "' is ", size, " bytes; ONNX files over 2 GiB must keep weights in external data");
  }
  const size_t len = std::max<size_t>(size, 1);
  void* buf = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) {
    ::close(fd);
    return resource_exhausted("'", path, "' (", size, " bytes) does not fit in memory");
  }
  ::madvise(buf, len, MADV_HUGEPAGE);
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, static_cast<char*>(buf) + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  char extra = 0;
  if (got == size && ::read(fd, &extra, 1) > 0) got = size + 1;  // it grew while being read
  ::close(fd);
  Result<Model> m = got == size ? load_model_bytes(buf, size, dir)
                                : Result<Model>(data_loss("could not read '", path, "': it changed size while "
                                                          "being read (", size, " bytes expected)"));
  ::munmap(buf, len);
  if (!m.ok()) return m.status().with_context(path);
  m->path = path;
  return m;
}

Result<Tensor> parse_tensor_proto(const void* data, size_t size) {
  onnx::TensorProto tp;
  if (size > static_cast<size_t>(std::numeric_limits<int>::max()) || !tp.ParseFromArray(data, static_cast<int>(size))) {
    return invalid_argument("not a valid TensorProto (", size, " bytes)");
  }
  return tensor_from_proto(tp, "");
}

Result<Tensor> load_tensor_proto_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open '", path, "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto t = parse_tensor_proto(bytes.data(), bytes.size());
  if (!t.ok()) return t.status().with_context(path);
  return t;
}

std::string serialize_tensor_proto(const Tensor& t, const std::string& name) {
  onnx::TensorProto tp;
  tensor_to_proto(t, name, &tp);
  return tp.SerializeAsString();
}

}  // namespace hearth
