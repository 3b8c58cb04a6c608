"""Pictures of programs: the data flow from inputs to outputs, as Graphviz dot text or as a
self-contained SVG (laid out here, no Graphviz needed). One node per equation, one per input
and constant, one per output."""
from __future__ import annotations

from xml.sax.saxutils import escape

from dfdx._src.ir import Lit, Program, Var, pp_param


def _label(eqn):
  params = ", ".join(f"{k}={pp_param(v)}" for k, v in eqn.params.items())
  return eqn.prim.name + (f"[{params}]" if params else "")


def _graph(program: Program):
  """Nodes (id, kind, label, layer) and edges (src, dst) of the data flow."""
  nodes, edges, producer, layer = [], [], {}, {}
  for i, v in enumerate(program.in_vars):
    nodes.append((f"in{i}", "input", f"input {i}: {v.aval.str_short()}", 0))
    producer[id(v)], layer[f"in{i}"] = f"in{i}", 0
  for i, v in enumerate(program.const_vars):
    nodes.append((f"const{i}", "constant", f"constant: {v.aval.str_short()}", 0))
    producer[id(v)], layer[f"const{i}"] = f"const{i}", 0
  for i, eqn in enumerate(program.eqns):
    node = f"eqn{i}"
    sources = [producer[id(a)] for a in eqn.inputs if isinstance(a, Var)]
    layer[node] = 1 + max((layer[s] for s in sources), default=0)
    nodes.append((node, "equation", _label(eqn), layer[node]))
    edges.extend((s, node) for s in sources)
    for v in eqn.outputs:
      producer[id(v)] = node
  last = 1 + max(layer.values(), default=0)
  for i, o in enumerate(program.outs):
    label = f"output {i}: {o.aval.str_short()}" + (f" = {o.val!r}" if type(o) is Lit else "")
    nodes.append((f"out{i}", "output", label, last))
    if isinstance(o, Var):
      edges.append((producer[id(o)], f"out{i}"))
  return nodes, edges


def to_dot(program: Program, name="program") -> str:
  """Graphviz dot text of the program's data flow."""
  shapes = {"input": "ellipse", "constant": "note", "equation": "box", "output": "doubleoctagon"}
  lines = [f'digraph "{name}" {{', "  rankdir=TB;", '  node [fontname="monospace"];']
  for node, kind, label, _ in _graph(program)[0]:
    text = label.replace("\\", "\\\\").replace('"', '\\"')
    lines.append(f'  {node} [shape={shapes[kind]}, label="{text}"];')
  lines += [f"  {a} -> {b};" for a, b in _graph(program)[1]]
  lines.append("}")
  return "\n".join(lines) + "\n"


def to_svg(program: Program, name="program") -> str:
  """A standalone SVG drawing of the program's data flow, layered from inputs (top) to
  outputs (bottom)."""
  nodes, edges = _graph(program)
  rows: dict = {}
  for node in nodes:
    rows.setdefault(node[3], []).append(node)
  char_w, box_h, gap_x, gap_y, margin = 7, 26, 24, 46, 20
  position, width = {}, 0
  for r, row in sorted(rows.items()):
    x = margin
    for node, kind, label, _ in row:
      w = max(60, char_w * len(label) + 16)
      position[node] = (x, margin + r * (box_h + gap_y), w)
      x += w + gap_x
    width = max(width, x)
  height = margin * 2 + (max(rows) + 1) * (box_h + gap_y)
  fills = {"input": "#e3f2fd", "constant": "#f5f5f5", "equation": "#fff8e1", "output": "#e8f5e9"}
  parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="12">',
           f"<title>{escape(name)}</title>",
           '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>']
  for a, b in edges:
    xa, ya, wa = position[a]
    xb, yb, wb = position[b]
    parts.append(f'<line x1="{xa + wa / 2}" y1="{ya + box_h}" x2="{xb + wb / 2}" y2="{yb}" '
                 'stroke="#555" marker-end="url(#arrow)"/>')
  for node, kind, label, _ in nodes:
    x, y, w = position[node]
    parts.append(f'<g class="{kind}" id="{node}"><rect x="{x}" y="{y}" width="{w}" '
                 f'height="{box_h}" rx="5" fill="{fills[kind]}" stroke="#333"/>'
                 f'<text x="{x + 8}" y="{y + 17}">{escape(label)}</text></g>')
  parts.append("</svg>")
  return "\n".join(parts) + "\n"
