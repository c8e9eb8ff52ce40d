// JSON documents of the REST API. See rest_documents.h.
#include "frontend/rest_documents.h"

#include <google/protobuf/util/json_util.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cerrno>
#include <cstdlib>
#include <set>

namespace hearth::frontend {

using namespace serving;  // the core these front ends serve

namespace {

namespace rj = rapidjson;
using Writer = rj::Writer<rj::StringBuffer>;

void string(Writer& w, const std::string& s) { w.String(s.c_str(), static_cast<rj::SizeType>(s.size())); }

void tensors(Writer& w, const std::vector<TensorMetadata>& ts) {
  w.StartArray();
  for (const TensorMetadata& t : ts) {
    w.StartObject();
    w.Key("name");
    string(w, t.name);
    w.Key("datatype");
    string(w, t.datatype);
    w.Key("shape");
    w.StartArray();
    for (int64_t d : t.shape) w.Int64(d);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
}

void duration(Writer& w, const char* key, const StatDuration& d) {
  w.Key(key);
  w.StartObject();
  w.Key("count");
  w.Uint64(d.count);
  w.Key("ns");
  w.Uint64(d.ns);
  w.EndObject();
}

// protobuf's JSON prints int64 as strings; Triton's clients expect numbers.
void numbers_from_strings(rj::Value& v, bool int_field, rj::Document::AllocatorType& alloc) {
  static const std::set<std::string> kIntFields = {
      "dims", "shape", "versions", "max_queue_delay_microseconds", "default_timeout_microseconds"};
  if (v.IsObject()) {
    for (auto& m : v.GetObject())
      numbers_from_strings(m.value, kIntFields.count(m.name.GetString()) > 0, alloc);
  } else if (v.IsArray()) {
    for (auto& e : v.GetArray()) numbers_from_strings(e, int_field, alloc);
  } else if (int_field && v.IsString()) {
    errno = 0;
    char* end = nullptr;
    long long n = std::strtoll(v.GetString(), &end, 10);
    if (errno == 0 && end != v.GetString() && *end == '\0') v.SetInt64(n);
  }
}

}  // namespace

std::string server_metadata_json(const ServerMetadata& m) {
  rj::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  w.Key("name");
  string(w, m.name);
  w.Key("version");
  string(w, m.version);
  w.Key("extensions");
  w.StartArray();
  for (const std::string& e : m.extensions) string(w, e);
  w.EndArray();
  w.EndObject();
  return buffer.GetString();
}

std::string model_metadata_json(const ModelMetadata& m) {
  rj::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  w.Key("name");
  string(w, m.name);
  w.Key("versions");
  w.StartArray();
  for (const std::string& v : m.versions) string(w, v);
  w.EndArray();
  w.Key("platform");
  string(w, m.platform);
  w.Key("inputs");
  tensors(w, m.inputs);
  w.Key("outputs");
  tensors(w, m.outputs);
  w.EndObject();
  return buffer.GetString();
}

Result<std::string> model_config_json(const inference::ModelConfig& config) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  auto status = google::protobuf::util::MessageToJsonString(config, &json, options);
  if (!status.ok()) return internal_error("cannot print the model config as JSON: ", status.ToString());
  rj::Document doc;
  doc.Parse(json.c_str(), json.size());
  if (doc.HasParseError()) return internal_error("protobuf printed JSON that does not parse");
  numbers_from_strings(doc, false, doc.GetAllocator());
  rj::StringBuffer buffer;
  Writer w(buffer);
  doc.Accept(w);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string model_statistics_json(const std::vector<ModelStatistics>& stats) {
  rj::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  w.Key("model_stats");
  w.StartArray();
  for (const ModelStatistics& s : stats) {
    w.StartObject();
    w.Key("name");
    string(w, s.name);
    w.Key("version");
    string(w, s.version);
    w.Key("last_inference");
    w.Uint64(s.last_inference_ms);
    w.Key("inference_count");
    w.Uint64(s.inference_count);
    w.Key("execution_count");
    w.Uint64(s.execution_count);
    w.Key("inference_stats");
    w.StartObject();
    duration(w, "success", s.success);
    duration(w, "fail", s.fail);
    duration(w, "queue", s.queue);
    duration(w, "compute_input", s.compute_input);
    duration(w, "compute_infer", s.compute_infer);
    duration(w, "compute_output", s.compute_output);
    duration(w, "cache_hit", {});
    duration(w, "cache_miss", {});
    w.EndObject();
    w.Key("batch_stats");
    w.StartArray();
    for (const BatchStatistics& b : s.batch_stats) {
      w.StartObject();
      w.Key("batch_size");
      w.Uint64(b.batch_size);
      duration(w, "compute_input", b.compute_input);
      duration(w, "compute_infer", b.compute_infer);
      duration(w, "compute_output", b.compute_output);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buffer.GetString();
}

std::string repository_index_json(const std::vector<ModelIndexEntry>& index) {
  rj::StringBuffer buffer;
  Writer w(buffer);
  w.StartArray();
  for (const ModelIndexEntry& e : index) {
    w.StartObject();
    w.Key("name");
    string(w, e.name);
    if (!e.version.empty()) {
      w.Key("version");
      string(w, e.version);
    }
    w.Key("state");
    string(w, e.state);
    w.Key("reason");
    string(w, e.reason);
    w.EndObject();
  }
  w.EndArray();
  return buffer.GetString();
}

}  // namespace hearth::frontend
