// A virtualized list for rows of varying height: only the rows in (and near) the viewport exist
// in the DOM. Heights start as an estimate, are measured once a row is rendered and kept on the
// row object, so scrolling back is stable. All DOM work happens in render(), which the caller
// runs at most once per animation frame.

const OVERSCAN_PX = 400;

export class VirtualList {
  /**
   * @param {HTMLElement} scroller the element that scrolls (overflow-y: auto)
   * @param {(row: object) => HTMLElement} build makes the element of one row
   * @param {number} estimate the height of a one-line row, in px
   */
  constructor(scroller, build, estimate = 22) {
    this.scroller = scroller;
    this.build = build;
    this.estimate = estimate;
    this.rows = [];
    this.offsets = new Float64Array(1);
    this.dirty = true;
    this.nodes = new Map(); // row -> element
    this.stale = new Set(); // rows whose element must be rebuilt
    this.staleAll = false;
    this.inner = document.createElement("div");
    this.inner.className = "vl-inner";
    scroller.replaceChildren(this.inner);
  }

  setRows(rows) {
    this.rows = rows;
    this.dirty = true;
  }

  // The row's content changed (paired, expanded): rebuild its element on the next render (not
  // now: the DOM never shows a list with a hole between two frames).
  invalidate(row) {
    this.stale.add(row);
    row.h = undefined;
    this.dirty = true;
  }

  // Every row again (new width, new time zone): elements are rebuilt on the next render.
  invalidateAll() {
    this.staleAll = true;
    for (const r of this.rows) r.h = undefined;
    this.dirty = true;
  }

  height(row) {
    return row.h ?? this.estimate;
  }

  layout() {
    if (!this.dirty) return;
    const n = this.rows.length;
    if (this.offsets.length < n + 1) this.offsets = new Float64Array(Math.max(n + 1, this.offsets.length * 2));
    let y = 0;
    for (let i = 0; i < n; i++) {
      this.offsets[i] = y;
      y += this.rows[i].h ?? this.estimate;
    }
    this.offsets[n] = y;
    this.total = y;
    this.dirty = false;
    this.inner.style.height = `${y}px`;
  }

  // index of the first row whose bottom is below y
  indexAt(y) {
    this.layout();
    let lo = 0;
    let hi = this.rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.offsets[mid + 1] <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  offsetOf(index) {
    this.layout();
    return this.offsets[Math.max(0, Math.min(index, this.rows.length))];
  }

  // The first and last row index at least partly visible.
  visibleRange() {
    const top = this.scroller.scrollTop;
    const first = this.indexAt(top);
    const last = Math.max(first, this.indexAt(top + this.scroller.clientHeight - 1));
    return [first, Math.min(last, this.rows.length - 1)];
  }

  atBottom(slack = 40) {
    this.layout();
    const s = this.scroller;
    return this.total - s.scrollTop - s.clientHeight < slack;
  }

  scrollToBottom() {
    this.layout();
    this.scroller.scrollTop = this.total;
  }

  // Put row `index` at the middle of the viewport.
  scrollToIndex(index) {
    this.layout();
    const y = this.offsets[index] - this.scroller.clientHeight / 2 + this.height(this.rows[index]) / 2;
    this.scroller.scrollTop = Math.max(0, y);
  }

  render() {
    const s = this.scroller;
    if (this.staleAll || this.stale.size) {
      for (const [row, el] of this.nodes) {
        if (this.staleAll || this.stale.has(row)) {
          el.remove();
          this.nodes.delete(row);
        }
      }
      this.staleAll = false;
      this.stale.clear();
    }
    for (let pass = 0; pass < 3; pass++) {
      this.layout();
      const top = s.scrollTop;
      const first = this.indexAt(Math.max(0, top - OVERSCAN_PX));
      const last = Math.min(this.rows.length - 1, this.indexAt(top + s.clientHeight + OVERSCAN_PX));
      const keep = new Set();
      for (let i = first; i <= last; i++) keep.add(this.rows[i]);
      for (const [row, el] of this.nodes) {
        if (!keep.has(row)) {
          el.remove();
          this.nodes.delete(row);
        }
      }
      const fresh = [];
      let before = null; // keep DOM order = row order (tests and screen readers read it in order)
      for (let i = last; i >= first; i--) {
        const row = this.rows[i];
        let el = this.nodes.get(row);
        if (!el) {
          el = this.build(row);
          this.nodes.set(row, el);
          this.inner.insertBefore(el, before);
          fresh.push([i, row, el]);
        } else if (el.nextSibling !== before) {
          this.inner.insertBefore(el, before);
        }
        el.style.transform = `translateY(${this.offsets[i]}px)`;
        before = el;
      }
      // measure the new rows; a height that changed above the viewport moves the content, so
      // the scroll position moves with it and the reader's row stays put
      let shift = 0;
      for (const [i, row, el] of fresh) {
        const h = el.offsetHeight || this.estimate;
        if (h !== this.height(row)) {
          if (this.offsets[i] + this.height(row) <= top) shift += h - this.height(row);
          row.h = h;
          this.dirty = true;
        } else {
          row.h = h;
        }
      }
      if (!this.dirty) return;
      if (shift) s.scrollTop = top + shift;
    }
    // still settling after three passes (many rows measured at once): place what exists
    this.layout();
    const first = this.indexAt(Math.max(0, s.scrollTop - OVERSCAN_PX));
    const last = Math.min(this.rows.length - 1, this.indexAt(s.scrollTop + s.clientHeight + OVERSCAN_PX));
    for (let i = first; i <= last; i++) {
      const el = this.nodes.get(this.rows[i]);
      if (el) el.style.transform = `translateY(${this.offsets[i]}px)`;
    }
  }
}
