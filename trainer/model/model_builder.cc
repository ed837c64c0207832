#include "trainer/model/model_builder.h"

namespace tandem::trainer {

Ref ModelBuilder::AddInput(const std::string& name, InputSource source, Shape shape) {
  inputs_.push_back({name, source, std::move(shape)});
  return Ref{name};
}

LayerConfig* ModelBuilder::Add(const std::string& name, const std::string& type) {
  LayerConfig c;
  c.name = name;
  c.type = type;
  layers_.push_back(std::move(c));
  return &layers_.back();
}

Ref ModelBuilder::Bidirectional(const std::string& name, const std::string& type, int64_t size,
                                const Ref& input) {
  Ref fw = RecurrentBuilder(Add(name + "_fw", type)).Size(size).Input(input);
  Ref rin = ReverseSequence(name + "_rin").Input(input);
  Ref bw = RecurrentBuilder(Add(name + "_bw", type)).Size(size).Input(rin);
  Ref rout = ReverseSequence(name + "_rout").Input(bw);
  return Concat(name).Inputs({fw, rout});
}

ModelDef ModelBuilder::Build() const {
  ModelDef def;
  def.inputs = inputs_;
  def.layers.assign(layers_.begin(), layers_.end());
  def.cost = cost_;
  def.decode = decode_;
  return def;
}

}  // namespace tandem::trainer
