"""Adapters users put in their model folders: LoRA/LyCORIS, hypernetworks, textual-inversion embeddings.

- `catalog`: the model manager (scan, persistent index, sidecars, lazy hashes).
- `lora_keys`: file keys -> modules of the loaded diffusers model; `adapters/`: one file per LoRA/LyCORIS type.
- `lora_file`: a file on disk -> a `LoraNetwork`; `weight_patcher`: merge deltas into weights, restore exactly.
- `hypernetwork` + `hypernet_attention`: A1111 hypernetworks as an SDPA attention processor.
- `embeddings`: textual-inversion files and the token lookup the conditioner uses.
- `manager`: the one object (owned by the Engine) that ties them together for a generation.
"""
