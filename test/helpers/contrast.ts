/// <reference lib="dom" />
import type { Page } from 'playwright-core';

/** One piece of text whose contrast against what is under it is below the bar. */
export interface LowContrast {
  text: string;
  where: string;
  ratio: number;
  color: string;
  background: string;
}

/**
 * WCAG contrast of every visible piece of text on the page against what is actually under it, as
 * Chromium computes the page's colours: each ancestor's background colour (composited when see-
 * through) and every stop of a background gradient (composited over what is below), taking the
 * worst. What axe-core skips (text over gradients, translucent surfaces) is measured here.
 * Returns the text below `minimum` (4.5:1 by default), large text included: stricter than WCAG's
 * 3:1 for large text, so that the big switch reads as well as the rest.
 */
export async function lowContrastText(page: Page, minimum = 4.5): Promise<LowContrast[]> {
  return page.evaluate((bar) => {
    type Rgba = [number, number, number, number];
    const parse = (value: string): Rgba[] =>
      [...value.replaceAll('transparent', 'rgba(0, 0, 0, 0)').matchAll(/rgba?\(([^)]+)\)/g)].map((match) => {
        const parts = match[1]!
          .split(/[\s,/]+/)
          .filter(Boolean)
          .map(Number);
        return [parts[0]!, parts[1]!, parts[2]!, parts[3] ?? 1];
      });
    const over = (top: Rgba, bottom: Rgba): Rgba => {
      const a = top[3] + bottom[3] * (1 - top[3]);
      if (a === 0) return [0, 0, 0, 0];
      const mix = (i: number) => (top[i]! * top[3] + bottom[i]! * bottom[3] * (1 - top[3])) / a;
      return [mix(0), mix(1), mix(2), a];
    };
    const luminance = ([r, g, b]: Rgba) => {
      const channel = (v: number) => {
        const s = v / 255;
        return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const ratio = (a: Rgba, b: Rgba) => {
      const [l1, l2] = [luminance(a), luminance(b)].sort((x, y) => y - x);
      return (l1! + 0.05) / (l2! + 0.05);
    };
    /** Every colour the background under `el` can be: composited down to an opaque one. */
    const backgrounds = (el: Element | null): Rgba[] => {
      if (!el) return [[255, 255, 255, 1]];
      const style = getComputedStyle(el);
      const layers: Rgba[][] = [];
      const image = style.backgroundImage;
      if (image && image !== 'none') {
        const stops = parse(image);
        if (stops.length) layers.push(stops);
      }
      const color = parse(style.backgroundColor)[0];
      if (color && color[3] > 0) layers.push([color]);
      const below = layers.some((layer) => layer.every((c) => c[3] >= 1)) ? [] : backgrounds(el.parentElement);
      let result: Rgba[] = below.length ? below : [];
      for (const layer of layers.slice().reverse()) {
        result = result.length ? layer.flatMap((top) => result.map((bottom) => over(top, bottom))) : layer;
      }
      return result.length ? result : below;
    };
    const found: { text: string; where: string; ratio: number; color: string; background: string }[] = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set<Element>();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const el = node.parentElement;
      if (!el || seen.has(el) || !node.textContent?.trim()) continue;
      seen.add(el);
      const style = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      if (
        box.width === 0 ||
        box.height === 0 ||
        style.visibility === 'hidden' ||
        el.closest('[hidden], template, .visually-hidden')
      )
        continue;
      // A disabled control is exempt from WCAG's contrast rule.
      if (el.closest('button:disabled, input:disabled, select:disabled')) continue;
      const color = parse(style.color)[0]!;
      const needed = bar;
      const worst = backgrounds(el)
        .map((background) => ({ background, value: ratio(over(color, background), background) }))
        .sort((a, b) => a.value - b.value)[0];
      if (worst && worst.value < needed)
        found.push({
          text: node.textContent.trim().slice(0, 40),
          where: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ').join('.')}` : ''}`,
          ratio: Math.round(worst.value * 100) / 100,
          color: style.color,
          background: `rgba(${worst.background.map((v) => Math.round(v * 100) / 100).join(', ')})`,
        });
    }
    return found;
  }, minimum);
}
