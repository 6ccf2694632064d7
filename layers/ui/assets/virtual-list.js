// A list that renders only the rows in view, so 10 000 entries cost as much as 40.
// Rows have one height, read from the CSS variable --row-h of the list.

import { h } from './dom.js';
import { visibleRange } from './search.js';

/**
 * `renderRow(index)` builds row `index`; `count()` is the number of rows. Returns
 * `{ el, refresh(), scrollToTop(), rowHeight() }`. Call `refresh()` after the rows changed.
 */
export function virtualList({ count, renderRow, cls = '', label = 'list' }) {
  const inner = h('div', { class: 'vlist-inner' });
  const rows = h('div', { class: 'vlist-rows', role: 'list' });
  inner.append(rows);
  const el = h('div', { class: ['vlist', cls], tabindex: '0', 'aria-label': label }, inner);
  let rh = 0;
  let frame = 0;
  let drawn = '';

  function rowHeight() {
    if (!rh) rh = parseFloat(getComputedStyle(el).getPropertyValue('--row-h')) || 40;
    return rh;
  }

  function draw(force = false) {
    frame = 0;
    const n = count();
    const height = rowHeight();
    inner.style.height = `${n * height}px`;
    const [first, last] = visibleRange(el.scrollTop, el.clientHeight || 600, height, n);
    const key = `${first}:${last}:${n}`;
    if (!force && key === drawn) return;
    drawn = key;
    rows.style.transform = `translateY(${first * height}px)`;
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.append(renderRow(i));
    rows.replaceChildren(frag);
  }

  el.addEventListener('scroll', () => {
    if (!frame) frame = requestAnimationFrame(() => draw());
  });
  const ro = new ResizeObserver(() => {
    rh = 0;
    draw(true);
  });
  ro.observe(el);

  return {
    el,
    refresh: () => draw(true),
    rowHeight,
    scrollToTop: () => {
      el.scrollTop = 0;
    },
    destroy: () => ro.disconnect(),
  };
}
