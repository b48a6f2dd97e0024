// The explain page's script (runtime/explain.html), a file of its own: the server's policy allows
// no inline script. It talks to this server's POST /v1/explain only.
"use strict";
// The line of the label the colours point toward is blue, as the words that moved toward it; the
// other labels' lines are not orange.
const FINAL_COLOUR = "#1f4e8c", OTHER_COLOURS = ["#6b6b6b", "#6b3fa0", "#17703a", "#9c2a5b", "#5b5b00"];
const SVG = document.getElementById("chart").namespaceURI;  // the SVG namespace, without a URL in the file
const form = document.getElementById("form");
const review = document.getElementById("review");
const button = document.getElementById("explain");
const statusLine = document.getElementById("status");
const errorBox = document.getElementById("error");
const warningsBox = document.getElementById("warnings");
const result = document.getElementById("result");

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  Object.entries(attributes).forEach(([name, value]) => node.setAttribute(name, value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgElement(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  Object.entries(attributes).forEach(([name, value]) => node.setAttribute(name, value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const fixed = (value, digits = 3) => value.toFixed(digits);
const signed = value => (value >= 0 ? "+" : "\u2212") + Math.abs(value).toFixed(2);
const count = value => value.toLocaleString("en");
// The index of the smallest (or, with sign -1, largest) value: no spread of one argument a word.
const extreme = (values, sign = 1) => values.reduce((best, value, index) => sign * value < sign * values[best] ? index : best, 0);

// One colour scheme on the page and the terminal (Explanation.colour_label in runtime/explain.py):
// with two labels, blue toward the second (positive) and orange toward the first (negative),
// whatever the answer; with more, blue toward the final label and orange away from it.
function colours(explanation) {
  const labels = Object.keys(explanation.probabilities);  // in the model's order
  const toward = labels.length === 2 ? labels[1] : explanation.label;
  const other = labels.length === 2 ? labels[0] : null;
  // A word's change to the probability of `toward`: its effect, or minus it for the other of two labels.
  const leaning = word => word.effect === null ? null : (toward === explanation.label ? word.effect : -word.effect);
  const direction = value => value >= 0 ? `toward ${toward}` : (other === null ? `away from ${toward}` : `toward ${other}`);
  return {toward, other, leaning, direction};
}

async function explain(text) {
  const response = await fetch("/v1/explain", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({text})});
  let body;
  try { body = await response.json(); } catch (error) { body = {}; }
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

function showProbabilities(explanation) {
  const rows = document.querySelector("#probabilities tbody");
  rows.replaceChildren();
  for (const [label, value] of Object.entries(explanation.probabilities)) {
    const row = element("tr");
    row.append(element("th", {scope: "row"}, label), element("td", {}, fixed(value)));
    const bar = element("td", {class: "bar", "aria-hidden": "true"});
    const fill = element("span");
    fill.style.width = `${(value * 100).toFixed(1)}%`;
    bar.append(fill);
    row.append(bar);
    rows.append(row);
  }
}

function showChart(explanation, read) {
  // x: words read (0 = before the first one, if the review's start was read); y: probability.
  const chart = document.getElementById("chart");
  chart.querySelectorAll("g").forEach(node => node.remove());
  const left = 44, right = 630, top = 12, bottom = 196;
  const points = (explanation.start ? [explanation.start] : []).concat(read.map(word => word.probabilities));
  const x = index => left + (points.length > 1 ? index * (right - left) / (points.length - 1) : 0);
  const y = value => bottom - value * (bottom - top);
  const axes = svgElement("g", {"aria-hidden": "true", "font-size": "12", fill: "#444"});
  for (const value of [0, 0.5, 1]) {
    axes.append(svgElement("line", {x1: left, x2: right, y1: y(value), y2: y(value), stroke: value === 0.5 ? "#999" : "#ccc",
                                    "stroke-dasharray": value === 0.5 ? "4 4" : ""}));
    axes.append(svgElement("text", {x: left - 8, y: y(value) + 4, "text-anchor": "end"}, value.toFixed(1)));
  }
  axes.append(svgElement("text", {x: (left + right) / 2, y: 222, "text-anchor": "middle"},
                         `words read (${count(read.length)})`));
  const lines = svgElement("g", {"aria-hidden": "true", fill: "none"});
  const legend = document.getElementById("chart-legend");
  legend.replaceChildren();
  const blue = colours(explanation).toward;
  const others = Object.keys(explanation.probabilities).filter(label => label !== blue);
  [blue, ...others].forEach((label, index) => {
    const colour = index === 0 ? FINAL_COLOUR : OTHER_COLOURS[(index - 1) % OTHER_COLOURS.length];
    const path = points.map((point, step) => `${fixed(x(step), 1)},${fixed(y(point[label]), 1)}`).join(" ");
    const line = svgElement("polyline", {points: path, stroke: colour, "stroke-width": index === 0 ? 2.5 : 1.5});
    if (index === 0) lines.append(line); else lines.prepend(line);  // the final label's line on top
    const item = element("li");
    const swatch = element("span", {class: "swatch", "aria-hidden": "true"});
    swatch.style.background = colour;
    item.append(swatch, document.createTextNode(`probability of ${label}`));
    legend.append(item);
  });
  chart.append(axes, lines);
  // The chart in words, for a screen reader.
  const label = explanation.label;
  const series = read.map(word => word.probabilities[label]);
  const low = extreme(series), high = extreme(series, -1);
  const first = explanation.start ? `from ${fixed(explanation.start[label], 2)} before the first word ` : "";
  document.getElementById("chart-desc").textContent =
    `Probability of ${label} after each of ${read.length} words read: ${first}to ${fixed(series[series.length - 1], 2)} ` +
    `after the last; lowest ${fixed(series[low], 2)} after \u201c${read[low].word}\u201d, ` +
    `highest ${fixed(series[high], 2)} after \u201c${read[high].word}\u201d.`;
}

function showWords(text, explanation, read) {
  // Spans are offsets in Unicode code points (Python's str), so the text is sliced as code points.
  const characters = Array.from(text);
  const piece = (start, end) => characters.slice(start, end).join("").replace(/<br\s*\/?>/gi, "\n");
  const label = explanation.label;
  const scheme = colours(explanation);
  const largest = read.reduce((most, word) => Math.max(most, Math.abs(word.effect || 0)), 0.02);
  const cut = explanation.truncated_words || 0;
  const nodes = document.createDocumentFragment();  // appended one by one: a review may have any number of words
  let position = 0;
  if (cut && read.length) {  // the words before the first one read, which the model never saw: one grey piece
    nodes.append(element("span", {class: "cut", title: `${count(cut)} words not read`}, piece(0, read[0].start)));
    position = read[0].start;
  }
  for (const word of read) {
    if (word.start < position) continue;  // a character that made two words is shown once
    nodes.append(document.createTextNode(piece(position, word.start)));
    const span = element("span", {class: "word"}, piece(word.start, word.end));
    const leaning = scheme.leaning(word) || 0;
    const strength = 0.12 + 0.55 * Math.min(1, Math.abs(leaning) / largest);
    span.style.backgroundColor = `rgba(var(${leaning >= 0 ? "--toward" : "--away"}), ${strength.toFixed(3)})`;
    span.dataset.effect = leaning;
    let title = word.effect === null ? `${word.word}: the first word read`
      : `${word.word}: ${signed(leaning)}, ${scheme.direction(leaning)}`;
    title += ` (${label} ${fixed(word.probabilities[label], 2)} after it)`;
    if (!word.in_vocabulary) {
      span.classList.add("oov");
      title += "; not in the model's vocabulary";
    }
    span.title = title;
    nodes.append(span);
    position = word.end;
  }
  nodes.append(document.createTextNode(piece(position, characters.length)));
  document.getElementById("words").replaceChildren(nodes);
  document.getElementById("words-legend").textContent =
    `Blue: ${scheme.direction(1)}; orange: ${scheme.direction(-1)}; the darker, the larger (the darkest is ${signed(largest).slice(1)}). ` +
    "Dotted underline: a word the model does not know. Point at a word to see its effect." +
    (cut ? ` The first ${count(cut)} words, in grey, were not read: the model reads a review's last ${count(read.length)}.` : "");
}

function showStrongest(explanation, read) {
  const list = document.getElementById("strongest");
  const scheme = colours(explanation);
  const ranked = read.filter(word => word.effect !== null).sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect));
  list.replaceChildren();
  for (const word of ranked.slice(0, 5)) {
    const leaning = scheme.leaning(word);
    list.append(element("li", {}, `${word.word}: ${signed(leaning)}, ${scheme.direction(leaning)}`));
  }
}

function showWarnings(warnings) {
  // The server's warnings about the model (an unverified artifact, say), where they cannot be missed.
  const list = Array.isArray(warnings) ? warnings.filter(warning => typeof warning === "string" && warning) : [];
  warningsBox.replaceChildren();
  for (const warning of list) warningsBox.append(element("p", {}, `Warning: ${warning}`));
  warningsBox.hidden = list.length === 0;
}

function clearResult() {
  // Nothing of an earlier review stays on screen once another is asked for.
  result.hidden = true;
  for (const id of ["label", "score", "coverage", "chart-desc", "words-legend"]) document.getElementById(id).textContent = "";
  for (const selector of ["#probabilities tbody", "#chart-legend", "#words", "#strongest"]) {
    document.querySelector(selector).replaceChildren();
  }
  document.getElementById("chart").querySelectorAll("g").forEach(node => node.remove());
  showWarnings([]);
}

function show(text, explanation) {
  const read = explanation.words;
  document.getElementById("label").textContent = explanation.label;
  document.getElementById("score").textContent = `(probability ${fixed(explanation.score)})`;
  const known = explanation.coverage;  // how many of the words read the model knows
  document.getElementById("coverage").textContent =
    `The model knows ${count(known.known_words)} of the ${count(known.words)} word${known.words === 1 ? "" : "s"} it read.`;
  showProbabilities(explanation);
  showChart(explanation, read);
  showWords(text, explanation, read);
  showStrongest(explanation, read);
  // The model's warnings, then this answer's own (too few words known).
  showWarnings([...(explanation.warnings || []), ...(explanation.warning ? [explanation.warning] : [])]);
  result.hidden = false;
}

form.addEventListener("submit", async event => {
  event.preventDefault();
  const text = review.value;
  errorBox.textContent = "";
  clearResult();
  button.disabled = true;
  statusLine.textContent = "Reading the review\u2026";
  try {
    const explanation = await explain(text);
    show(text, explanation);
    statusLine.textContent = `Done: ${explanation.label}.`;
    document.getElementById("result-heading").focus();
  } catch (error) {
    clearResult();
    statusLine.textContent = "";
    errorBox.textContent = `Could not explain this review: ${error.message}`;
  } finally {
    button.disabled = false;
  }
});

review.addEventListener("keydown", event => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
});
