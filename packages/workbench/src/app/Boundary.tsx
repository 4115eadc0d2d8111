// An error in one part of the page is shown in that part, with a way to try it again; the rest
// of the page keeps working (never a blank page).
import { Component, type ErrorInfo, type ReactNode } from "react";

interface Props {
  /** what this part is, in words: "The form", "The gallery" */
  name: string;
  children: ReactNode;
  /** fetch again what this part shows, before drawing it again */
  onRetry?: () => unknown;
}

export class Boundary extends Component<Props, { error: Error | null }> {
  override state = { error: null as Error | null };

  static getDerivedStateFromError(error: unknown) {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  override componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error(`${this.props.name} failed:`, error, info.componentStack);
  }

  override render() {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <div className="panel crashed" role="alert" data-boundary={this.props.name}>
        <p>
          <strong>{this.props.name} hit an error:</strong> {error.message}
        </p>
        <button
          type="button"
          className="secondary"
          onClick={() =>
            void Promise.resolve(this.props.onRetry?.()).finally(() => this.setState({ error: null }))
          }
        >
          Try again
        </button>
      </div>
    );
  }
}
