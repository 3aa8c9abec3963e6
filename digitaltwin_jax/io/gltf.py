"""Binary glTF 2.0 (.glb) writing and reading: textured mesh with named morph targets.

The avatar's ``head.glb`` holds the neutral fitted head, its diffuse texture (PNG embedded in the
binary chunk) and every expression blendshape as a morph target named after the blendshape (names in
``mesh.extras.targetNames``, the convention three.js, Blender and Babylon read), with the fitted
weights as the mesh's default ``weights`` -- so the avatar animates in any glTF viewer.

glTF stores one index per corner, so vertices are split at UV seams: a glTF vertex is a unique
(position index, uv index) pair; morph-target deltas are split the same way.  glTF's texture origin is
the top-left corner, OBJ's the bottom-left: ``texcoord = (u, 1 - v)``.  Units: glTF assumes metres;
we keep millimetres unless ``scale`` is given (the avatar command writes metres, ``scale=1e-3``).
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np

from digitaltwin_jax.io.atomic import atomic_write_bytes
from digitaltwin_jax.io.parts import MeshPart, check_part
from digitaltwin_jax.geometry.mesh import vertex_normals_np as vertex_normals

__all__ = ["write_glb", "read_glb", "split_seams"]

_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def split_seams(faces, uv_faces):
    """Unique (vertex, uv) corners.

    Args:
      faces: ``(F, 3) int`` vertex indices.
      uv_faces: ``(F, 3) int`` uv indices.

    Returns:
      ``(vertex_of (S,) int, uv_of (S,) int, new_faces (F, 3) int)``: split vertex s uses position
      ``vertex_of[s]`` and uv ``uv_of[s]``.
    """
    faces = np.asarray(faces, dtype=np.int64)
    uv_faces = np.asarray(uv_faces, dtype=np.int64)
    pairs = np.stack([faces.ravel(), uv_faces.ravel()], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return uniq[:, 0], uniq[:, 1], inverse.reshape(faces.shape)


def write_glb(path, vertices, faces, uvs=None, uv_faces=None, *, texture_png: bytes | None = None,
              morph_targets=None, morph_names=None, morph_weights=None, scale: float = 1.0,
              name: str = "head", parts: tuple[MeshPart, ...] = ()) -> None:
    """Write a binary glTF 2.0 file atomically.

    Args:
      path: destination ``.glb``.
      vertices: ``(V, 3)`` float, the base (neutral) mesh.
      faces: ``(F, 3)`` int.
      uvs, uv_faces: ``(T, 2)`` float (OBJ convention, v up) and ``(F, 3)`` int, optional together.
      texture_png: PNG bytes of the base-colour texture (requires uvs).
      morph_targets: ``(M, V, 3)`` float position deltas, optional.
      morph_names: ``M`` names; morph_weights: ``(M,)`` default weights.
      scale: multiply positions and deltas (e.g. ``1e-3`` for mm -> m).
      parts: extra meshes (:class:`~digitaltwin_jax.io.parts.MeshPart`, e.g. the eyeballs), each its own
        node, mesh and material (with its ``texture_png``), no morph targets; same frame and ``scale``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices contain NaN or inf")
    if len(f) == 0:
        raise ValueError(f"the mesh is empty ({len(v)} vertices, 0 faces): a glTF mesh needs at least one triangle")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"faces index outside the vertex array (range [{f.min()}, {f.max()}], {len(v)} vertices)")
    if (uvs is None) != (uv_faces is None):
        raise ValueError("uvs and uv_faces must be given together")
    if texture_png is not None and uvs is None:
        raise ValueError("a texture needs uvs")
    if uvs is not None:
        vert_of, uv_of, f_out = split_seams(f, uv_faces)
        tex = np.asarray(uvs, dtype=np.float64)[uv_of]
        tex = np.stack([tex[:, 0], 1.0 - tex[:, 1]], axis=1)
    else:
        vert_of, f_out, tex = np.arange(len(v)), f, None
    pos = (v * scale)[vert_of].astype(np.float32)
    nrm = vertex_normals(v, f)[vert_of].astype(np.float32)
    nrm[np.all(nrm == 0, axis=1)] = (0.0, 0.0, 1.0)  # glTF requires unit normals

    blob = io.BytesIO()
    views, accessors = [], []

    def add(data: np.ndarray, ctype: int, atype: str, target=None, minmax=False) -> int:
        while blob.tell() % 4:
            blob.write(b"\0")
        off = blob.tell()
        raw = np.ascontiguousarray(data).tobytes()
        blob.write(raw)
        view = {"buffer": 0, "byteOffset": off, "byteLength": len(raw)}
        if target:
            view["target"] = target
        views.append(view)
        acc = {"bufferView": len(views) - 1, "componentType": ctype, "count": int(len(data)), "type": atype}
        if minmax:
            acc["min"] = data.min(axis=0).tolist()
            acc["max"] = data.max(axis=0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    attributes = {
        "POSITION": add(pos, _FLOAT, "VEC3", _ARRAY_BUFFER, minmax=True),
        "NORMAL": add(nrm, _FLOAT, "VEC3", _ARRAY_BUFFER),
    }
    if tex is not None:
        attributes["TEXCOORD_0"] = add(tex.astype(np.float32), _FLOAT, "VEC2", _ARRAY_BUFFER)
    indices = add(f_out.astype(np.uint32).ravel(), _UINT32, "SCALAR", _ELEMENT_ARRAY_BUFFER)
    accessors[indices]["count"] = int(f_out.size)
    primitive = {"attributes": attributes, "indices": indices, "mode": 4}
    mesh = {"name": name, "primitives": [primitive]}
    gltf = {
        "asset": {"version": "2.0", "generator": "digitaltwin_jax"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [mesh],
        "accessors": accessors,
        "bufferViews": views,
    }
    if morph_targets is not None:
        mt = np.asarray(morph_targets, dtype=np.float64)
        if mt.ndim != 3 or mt.shape[1:] != v.shape:
            raise ValueError(f"morph_targets must be (M, {len(v)}, 3), got {mt.shape}")
        if not np.all(np.isfinite(mt)):
            raise ValueError("morph_targets contain NaN or inf")
        names = list(morph_names) if morph_names is not None else [f"target_{i}" for i in range(len(mt))]
        if len(names) != len(mt):
            raise ValueError(f"{len(names)} morph names for {len(mt)} morph targets")
        weights = np.zeros(len(mt)) if morph_weights is None else np.asarray(morph_weights, dtype=np.float64)
        if weights.shape != (len(mt),) or not np.all(np.isfinite(weights)):
            raise ValueError(f"morph_weights must be ({len(mt)},) finite")
        primitive["targets"] = [
            {"POSITION": add((d * scale)[vert_of].astype(np.float32), _FLOAT, "VEC3", _ARRAY_BUFFER, minmax=True)}
            for d in mt
        ]
        mesh["weights"] = [float(w) for w in weights]
        mesh["extras"] = {"targetNames": names}
    def add_material(png: bytes, mat_name: str, roughness: float) -> int:
        if not png.startswith(b"\x89PNG"):
            raise ValueError("texture_png must be PNG bytes")
        while blob.tell() % 4:
            blob.write(b"\0")
        off = blob.tell()
        blob.write(png)
        views.append({"buffer": 0, "byteOffset": off, "byteLength": len(png)})
        images = gltf.setdefault("images", [])
        images.append({"bufferView": len(views) - 1, "mimeType": "image/png"})
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
        textures = gltf.setdefault("textures", [])
        textures.append({"source": len(images) - 1, "sampler": 0})
        materials = gltf.setdefault("materials", [])
        materials.append({"name": mat_name, "pbrMetallicRoughness": {
            "baseColorTexture": {"index": len(textures) - 1}, "metallicFactor": 0.0, "roughnessFactor": roughness}})
        return len(materials) - 1

    if texture_png is not None:
        primitive["material"] = add_material(texture_png, "skin", 0.7)
    for part in parts:
        pv, pf, pu, puf = check_part(part)
        p_vert, p_uv, p_faces = split_seams(pf, puf)
        p_tex = pu[p_uv]
        p_nrm = vertex_normals(pv, pf)[p_vert].astype(np.float32)
        p_nrm[np.all(p_nrm == 0, axis=1)] = (0.0, 0.0, 1.0)
        p_attr = {"POSITION": add((pv * scale)[p_vert].astype(np.float32), _FLOAT, "VEC3", _ARRAY_BUFFER, minmax=True),
                  "NORMAL": add(p_nrm, _FLOAT, "VEC3", _ARRAY_BUFFER),
                  "TEXCOORD_0": add(np.stack([p_tex[:, 0], 1.0 - p_tex[:, 1]], 1).astype(np.float32), _FLOAT, "VEC2",
                                    _ARRAY_BUFFER)}
        p_idx = add(p_faces.astype(np.uint32).ravel(), _UINT32, "SCALAR", _ELEMENT_ARRAY_BUFFER)
        p_prim = {"attributes": p_attr, "indices": p_idx, "mode": 4}
        if part.texture_png is not None:
            p_prim["material"] = add_material(part.texture_png, part.name, float(part.roughness))
        gltf["meshes"].append({"name": part.name, "primitives": [p_prim]})
        gltf["nodes"].append({"mesh": len(gltf["meshes"]) - 1, "name": part.name})
        gltf["scenes"][0]["nodes"].append(len(gltf["nodes"]) - 1)
    while blob.tell() % 4:
        blob.write(b"\0")
    bin_chunk = blob.getvalue()
    gltf["buffers"] = [{"byteLength": len(bin_chunk)}]
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * ((4 - len(js) % 4) % 4)
    total = 12 + 8 + len(js) + 8 + len(bin_chunk)
    out = struct.pack("<4sII", b"glTF", 2, total)
    out += struct.pack("<I4s", len(js), b"JSON") + js
    out += struct.pack("<I4s", len(bin_chunk), b"BIN\0") + bin_chunk
    atomic_write_bytes(path, out)


def read_glb(path) -> dict:
    """Read a .glb written by :func:`write_glb` (or any single-buffer GLB) into arrays.

    Returns a dict with ``json`` (the parsed glTF), ``positions (S,3)``, ``indices (F,3)``,
    ``texcoords (S,2)`` or None, ``morph_targets (M,S,3)`` or None, ``morph_names``,
    ``morph_weights``, ``image`` (bytes) or None, for the first primitive of the first mesh.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2 or length != len(data):
        raise ValueError(f"{path}: not a glTF 2.0 binary file")
    jlen, jtype = struct.unpack_from("<I4s", data, 12)
    if jtype != b"JSON":
        raise ValueError(f"{path}: first chunk is not JSON")
    gltf = json.loads(data[20:20 + jlen])
    off = 20 + jlen
    blen, btype = struct.unpack_from("<I4s", data, off)
    if btype != b"BIN\0":
        raise ValueError(f"{path}: second chunk is not BIN")
    binary = data[off + 8: off + 8 + blen]
    ncomp = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
    dtypes = {_FLOAT: np.float32, _UINT32: np.uint32, 5123: np.uint16, 5121: np.uint8}

    def acc(i):
        a = gltf["accessors"][i]
        vw = gltf["bufferViews"][a["bufferView"]]
        start = vw.get("byteOffset", 0) + a.get("byteOffset", 0)
        n = a["count"] * ncomp[a["type"]]
        arr = np.frombuffer(binary, dtype=dtypes[a["componentType"]], count=n, offset=start)
        return arr.reshape(a["count"], ncomp[a["type"]]) if ncomp[a["type"]] > 1 else arr

    mesh = gltf["meshes"][0]
    prim = mesh["primitives"][0]
    out = {
        "json": gltf,
        "positions": acc(prim["attributes"]["POSITION"]),
        "indices": acc(prim["indices"]).reshape(-1, 3),
        "texcoords": acc(prim["attributes"]["TEXCOORD_0"]) if "TEXCOORD_0" in prim["attributes"] else None,
        "morph_targets": np.stack([acc(t["POSITION"]) for t in prim["targets"]]) if prim.get("targets") else None,
        "morph_names": mesh.get("extras", {}).get("targetNames", []),
        "morph_weights": mesh.get("weights", []),
        "image": None,
    }
    if gltf.get("images"):
        vw = gltf["bufferViews"][gltf["images"][0]["bufferView"]]
        out["image"] = binary[vw.get("byteOffset", 0): vw.get("byteOffset", 0) + vw["byteLength"]]
    return out
